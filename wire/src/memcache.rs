//! The shared-memory passwd cache: one fixed-size file that `accountmapd` writes and the NSS
//! module reads, so that a warm `getpwnam(alias)` costs a hash and a few memory reads instead
//! of a socket round trip (the idea of SSSD's memcache, `/var/lib/sss/mc/passwd`).
//!
//! Everything both sides must agree on lives here: the layout, the constants, the name hash,
//! and the seqlock read and write of a record. The daemon is the only writer; any process may
//! read.
//!
//! # File
//! [`FILE_NAME`] in the directory of the daemon's socket (`/run/accountmap/passwd.cache`),
//! mode 0644, owned by the daemon's user, exactly [`FILE_SIZE`] bytes, every field a
//! little-endian `u64` word:
//!
//! ```text
//! header (HEADER_WORDS words)
//!   0 magic "AMPWCACH"     1 version        2 file size     3 state (0 live, 1 retired)
//!   4-5 salt (16 random bytes, new with every file)         6-7 boot id of the writer's boot
//! SLOTS records of RECORD_WORDS words
//!   0 seq (odd while the writer changes the record)
//!   1 expiry: CLOCK_MONOTONIC nanoseconds; 0 = empty slot
//!   2-3 key: the first 16 bytes of SHA-256(salt || name as queried)
//!   4 uid (low 32 bits) | gid (high 32 bits)
//!   5 byte lengths of pw_name, pw_gecos, pw_dir, pw_shell (16 bits each, in that order),
//!     or NOT_AN_ALIAS (all ones): the daemon answered that the name is no alias it serves
//!   6.. the four strings back to back, no NULs (DATA_BYTES at most)
//! ```
//!
//! A "not an alias" record lets a fresh process whose `getpwnam` misses `files` get its
//! NOTFOUND without a socket round trip, for `negative_cache_ttl`; it is written only for a
//! real "no such alias" answer, never for an error or a refusal by the rate limit.
//!
//! A record lives in one of [`PROBE`] consecutive slots from `key % SLOTS`; the writer replaces
//! the record of the same key, else an empty or expired slot, else the one that expires
//! soonest. The alias itself is never written: only its salted hash (the passwd fields of the
//! local account are public anyway).
//!
//! # Concurrency
//! A per-record seqlock. The writer makes `seq` odd, fences, writes the words, and makes `seq`
//! even again with release ordering; a reader loads `seq` (acquire), copies the words, fences
//! (acquire), loads `seq` again, and keeps the copy only when both loads give the same even
//! value, retrying [`READ_RETRIES`] times before calling it a miss. Every access to the shared
//! words is an atomic `u64` load or store (`Relaxed` unless stated): no data race in Rust's
//! model, whatever the other process does. Loads are all a reader ever does, and atomic loads
//! of up to the native word size are allowed on read-only memory.
//!
//! # Lifetime
//! The daemon creates a new file under a temporary name, renames it over the old one, and marks
//! the old one retired (`state` = 1); a reader that sees "retired" maps the file again. On a
//! reload (SIGHUP), `accountmapctl cache flush` and a clean stop it empties the table (a stop
//! also retires and removes the file). The file of a daemon killed with SIGKILL stays, and its
//! entries are answered until they expire (at most `cache_ttl`), as with SSSD's memcache.
//! Expiry uses CLOCK_MONOTONIC, which is system-wide on Linux; it starts again at boot, so a
//! file also names the boot it was written in, and a reader ignores a file of another boot
//! (unless it lives on tmpfs or ramfs, which no boot outlives).

use crate::PasswdEntry;
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::atomic::{fence, AtomicPtr, AtomicU32, AtomicU64, Ordering};

/// The cache file's name, in the directory of the daemon's socket.
pub const FILE_NAME: &str = "passwd.cache";
/// "AMPWCACH", little-endian.
pub const MAGIC: u64 = u64::from_le_bytes(*b"AMPWCACH");
/// "AMPOLICY", little-endian: the decision table ([`crate::policy_cache`]).
pub const POLICY_MAGIC: u64 = u64::from_le_bytes(*b"AMPOLICY");

/// Which of the daemon's two shared tables a file is: the same layout, files and rules, with
/// its own magic, name and mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `passwd.cache`, mode 0644: read by the NSS module in every process.
    Passwd,
    /// `policy.cache`, mode 0600: the daemon's decisions for root's PAM stacks (a decision
    /// says whether a name may sign in, which only root may ask about others).
    Policy,
}

impl Kind {
    pub const fn magic(self) -> u64 {
        match self {
            Kind::Passwd => MAGIC,
            Kind::Policy => POLICY_MAGIC,
        }
    }

    pub const fn file_name(self) -> &'static str {
        match self {
            Kind::Passwd => FILE_NAME,
            Kind::Policy => crate::policy_cache::FILE_NAME,
        }
    }

    pub const fn mode(self) -> u32 {
        match self {
            Kind::Passwd => 0o644,
            Kind::Policy => 0o600,
        }
    }
}

/// The layout version; a reader ignores a file of any other (2: "not an alias" records).
pub const VERSION: u64 = 2;
/// Words of the header.
pub const HEADER_WORDS: usize = 8;
/// Words of one record (512 bytes).
pub const RECORD_WORDS: usize = 64;
/// Records in the table (a power of two).
pub const SLOTS: usize = 4096;
/// Slots looked at for one key, from its home slot on.
pub const PROBE: usize = 8;
/// Times a reader tries to get a consistent copy of a record before it calls it a miss.
pub const READ_RETRIES: usize = 16;
/// Words in the file.
pub const FILE_WORDS: usize = HEADER_WORDS + SLOTS * RECORD_WORDS;
/// Bytes in the file (2 MiB and 64 bytes).
pub const FILE_SIZE: usize = FILE_WORDS * 8;
/// Words of a record that hold strings.
pub const DATA_WORDS: usize = RECORD_WORDS - R_DATA;
/// Bytes of strings a record holds; an entry with longer ones is not cached.
pub const DATA_BYTES: usize = DATA_WORDS * 8;

const H_MAGIC: usize = 0;
const H_VERSION: usize = 1;
const H_SIZE: usize = 2;
const H_STATE: usize = 3;
const H_SALT: usize = 4;
const H_BOOT: usize = 6;

const R_SEQ: usize = 0;
const R_EXPIRY: usize = 1;
const R_KEY: usize = 2;
const R_IDS: usize = 4;
const R_LENS: usize = 5;
const R_DATA: usize = 6;

/// The lengths word of a "not an alias" record: no entry could have it (four 0xffff-byte
/// strings do not fit a record).
const NOT_AN_ALIAS: u64 = u64::MAX;

const STATE_LIVE: u64 = 0;
const STATE_RETIRED: u64 = 1;

/// The cache file that goes with the daemon socket `socket`.
pub fn path_for(socket: &Path) -> Option<PathBuf> {
    path_of(socket, Kind::Passwd)
}

/// The file of `kind` that goes with the daemon socket `socket`.
pub fn path_of(socket: &Path, kind: Kind) -> Option<PathBuf> {
    let dir = socket.parent()?;
    Some(if dir.as_os_str().is_empty() {
        PathBuf::from(kind.file_name())
    } else {
        dir.join(kind.file_name())
    })
}

/// CLOCK_MONOTONIC in nanoseconds (0 if the clock cannot be read, which Linux never does).
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`) as two words. One open and one read into
/// the stack (no size probe, no allocation): a fresh process pays it once per table it maps on
/// a filesystem that can outlive a boot ([`of_this_boot`]).
pub fn boot_id() -> Option<[u64; 2]> {
    use std::io::Read;
    let mut buf = [0u8; 64];
    let n = File::open("/proc/sys/kernel/random/boot_id")
        .ok()?
        .read(&mut buf)
        .ok()?;
    parse_boot_id(buf.get(..n)?)
}

/// The two words of a boot id's text (`8-4-4-4-12` hex digits, then a newline).
fn parse_boot_id(text: &[u8]) -> Option<[u64; 2]> {
    let mut words = [0u64; 2];
    let mut digits = 0usize;
    for &b in text {
        if b == b'-' || b.is_ascii_whitespace() {
            continue;
        }
        let d = u64::from(char::from(b).to_digit(16)?);
        let word = words.get_mut(digits / 16)?;
        *word = (*word << 4) | d;
        digits += 1;
    }
    (digits == 32).then_some(words)
}

/// Whether a cache file written in the boot `boot` belongs to this boot. A file on tmpfs or
/// ramfs (the default `/run/accountmap`) cannot have outlived the boot that wrote it, so only
/// a file on another filesystem costs the read of the boot id, which every fresh process that
/// maps the table would otherwise pay (a procfs path walk and three system calls).
fn of_this_boot(file: &File, boot: [u64; 2]) -> bool {
    on_volatile_fs(file) || boot_id() == Some(boot)
}

/// `RAMFS_MAGIC` of `<linux/magic.h>` (not in the libc crate).
const RAMFS_MAGIC: libc::c_long = 0x8584_58f6;

/// Whether `file` lives on tmpfs or ramfs, which no boot outlives.
pub fn on_volatile_fs(file: &File) -> bool {
    let mut fs = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: the descriptor is valid for the call (borrowed from `file`) and `fs` is valid for
    // writes of a struct statfs, which fstatfs fills when it returns 0.
    if unsafe { libc::fstatfs(file.as_raw_fd(), fs.as_mut_ptr()) } != 0 {
        return false;
    }
    // SAFETY: fstatfs returned 0, so it initialised `fs`.
    let fs = unsafe { fs.assume_init() };
    fs.f_type == libc::TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC
}

/// The key of `name` in a file with `salt`: the first 16 bytes of SHA-256(salt || name), the
/// salt as its two words' little-endian bytes. Hashed in place on the stack: no allocation.
pub fn key(salt: [u64; 2], name: &[u8]) -> [u64; 2] {
    let digest = Sha256::new()
        .chain_update(salt[0].to_le_bytes())
        .chain_update(salt[1].to_le_bytes())
        .chain_update(name)
        .finalize();
    let mut a = [0u8; 8];
    let mut b = [0u8; 8];
    a.copy_from_slice(&digest[..8]);
    b.copy_from_slice(&digest[8..16]);
    [u64::from_le_bytes(a), u64::from_le_bytes(b)]
}

/// The table over shared words: lookups for anyone, writes through [`TableWriter`].
#[derive(Clone, Copy)]
pub struct Table<'a> {
    words: &'a [AtomicU64],
    magic: u64,
}

/// A consistent copy of one record.
struct Snapshot {
    words: [u64; RECORD_WORDS],
}

enum Probe {
    /// The record holds the key (the copy is consistent).
    Match,
    /// Another key, or empty.
    Other,
    /// No consistent copy within the retries.
    Busy,
}

impl<'a> Table<'a> {
    /// The passwd table over `words`, which must be exactly [`FILE_WORDS`] long.
    pub fn new(words: &'a [AtomicU64]) -> Option<Table<'a>> {
        Table::of(Kind::Passwd, words)
    }

    /// The table of `kind` over `words` ([`FILE_WORDS`] long).
    pub fn of(kind: Kind, words: &'a [AtomicU64]) -> Option<Table<'a>> {
        (words.len() == FILE_WORDS).then_some(Table {
            words,
            magic: kind.magic(),
        })
    }

    fn header(&self, i: usize) -> u64 {
        self.words[i].load(Ordering::Acquire)
    }

    /// Whether the header names this layout (magic, version, size).
    pub fn layout_ok(&self) -> bool {
        self.header(H_MAGIC) == self.magic
            && self.header(H_VERSION) == VERSION
            && self.header(H_SIZE) == FILE_SIZE as u64
    }

    /// Whether the writer has given this file up (a newer one replaced it, or it stopped).
    pub fn retired(&self) -> bool {
        self.header(H_STATE) != STATE_LIVE
    }

    pub fn salt(&self) -> [u64; 2] {
        [self.header(H_SALT), self.header(H_SALT + 1)]
    }

    pub fn boot(&self) -> [u64; 2] {
        [self.header(H_BOOT), self.header(H_BOOT + 1)]
    }

    fn record(&self, slot: usize) -> &'a [AtomicU64] {
        let start = HEADER_WORDS + (slot % SLOTS) * RECORD_WORDS;
        &self.words[start..start + RECORD_WORDS]
    }

    /// One seqlock read of `slot`, looking for `key`; on a match the record is in `copy`.
    fn probe(&self, slot: usize, key: [u64; 2], copy: &mut Snapshot) -> Probe {
        let rec = self.record(slot);
        for _ in 0..READ_RETRIES {
            let seq = rec[R_SEQ].load(Ordering::Acquire);
            if seq & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let expiry = rec[R_EXPIRY].load(Ordering::Relaxed);
            let k0 = rec[R_KEY].load(Ordering::Relaxed);
            let k1 = rec[R_KEY + 1].load(Ordering::Relaxed);
            if expiry == 0 || k0 != key[0] || k1 != key[1] {
                fence(Ordering::Acquire);
                if rec[R_SEQ].load(Ordering::Relaxed) == seq {
                    return Probe::Other;
                }
                continue;
            }
            for (dst, src) in copy.words.iter_mut().zip(rec.iter()) {
                *dst = src.load(Ordering::Relaxed);
            }
            fence(Ordering::Acquire);
            if rec[R_SEQ].load(Ordering::Relaxed) == seq {
                return Probe::Match;
            }
        }
        Probe::Busy
    }

    /// What is cached for `name` if it has not expired at `now` (CLOCK_MONOTONIC ns).
    pub fn lookup(&self, name: &[u8], now: u64) -> Option<Cached> {
        self.find(name, now, decode)
    }

    /// The numbers word and the four strings of the record of `name`, if it has not expired
    /// at `now` and its strings are UTF-8 of sane lengths (tables other than passwd).
    pub fn lookup_record(&self, name: &[u8], now: u64) -> Option<Record> {
        self.find(name, now, |copy| {
            let (ids, fields) = fields(copy)?;
            Some(Record { ids, fields })
        })
    }

    fn find<T>(&self, name: &[u8], now: u64, decode: impl Fn(&Snapshot) -> Option<T>) -> Option<T> {
        let key = key(self.salt(), name);
        let home = key[0] as usize;
        let mut copy = Snapshot {
            words: [0; RECORD_WORDS],
        };
        for i in 0..PROBE {
            match self.probe(home.wrapping_add(i), key, &mut copy) {
                Probe::Match => {
                    let expiry = copy.words[R_EXPIRY];
                    if expiry <= now || copy.words[R_KEY..R_KEY + 2] != key {
                        return None;
                    }
                    return decode(&copy);
                }
                Probe::Other => {}
                Probe::Busy => return None,
            }
        }
        None
    }

    /// Live (unexpired) records at `now`, reading every slot (tests compare the writer's
    /// count, [`TableWriter::live`], with it).
    pub fn live(&self, now: u64) -> usize {
        self.live_among(0..SLOTS, now)
    }

    /// How many of `slots` hold a record unexpired at `now`.
    fn live_among(&self, slots: impl Iterator<Item = usize>, now: u64) -> usize {
        slots
            .filter(|&s| self.record(s)[R_EXPIRY].load(Ordering::Relaxed) > now)
            .count()
    }
}

/// What a record says about a name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cached {
    /// The local account's entry the alias stands for.
    Entry(PasswdEntry),
    /// The daemon answered that the name is no alias it serves (NSS_STATUS_NOTFOUND).
    NotAnAlias,
}

/// A record of a table other than passwd: a numbers word and four strings, whose meaning is the
/// table's ([`crate::policy_cache`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub ids: u64,
    pub fields: [String; 4],
}

/// The strings and numbers of a consistent record copy, if they make sense.
fn decode(copy: &Snapshot) -> Option<Cached> {
    if copy.words[R_LENS] == NOT_AN_ALIAS {
        return Some(Cached::NotAnAlias);
    }
    let (ids, [name, gecos, dir, shell]) = fields(copy)?;
    Some(Cached::Entry(PasswdEntry {
        name,
        gecos,
        dir,
        shell,
        uid: ids as u32,
        gid: (ids >> 32) as u32,
    }))
}

/// The numbers word and the four strings of a consistent record copy, if they make sense.
fn fields(copy: &Snapshot) -> Option<(u64, [String; 4])> {
    let ids = copy.words[R_IDS];
    let lens = copy.words[R_LENS];
    let lens = [0, 16, 32, 48].map(|shift| ((lens >> shift) & 0xffff) as usize);
    if lens.iter().sum::<usize>() > DATA_BYTES {
        return None;
    }
    let mut bytes = Vec::with_capacity(DATA_BYTES);
    for w in &copy.words[R_DATA..] {
        bytes.extend_from_slice(&w.to_le_bytes());
    }
    let mut at = 0;
    let mut field = |len: usize| -> Option<String> {
        let s = bytes.get(at..at + len)?;
        at += len;
        String::from_utf8(s.to_vec()).ok()
    };
    Some((
        ids,
        [
            field(lens[0])?,
            field(lens[1])?,
            field(lens[2])?,
            field(lens[3])?,
        ],
    ))
}

/// The one writer of a table. Only one may exist per table at a time (the daemon keeps its own
/// behind a lock): the seqlock protects readers from the writer, not writers from each other.
pub struct TableWriter<'a> {
    table: Table<'a>,
    /// Which slots hold a record, when the writer keeps count ([`WriteMap::writer`]): a flush
    /// and `live` then read only those, instead of every record of the file. Reading all 2 MiB
    /// would map every page into the daemon (its RSS, by 2 MiB per table) for nothing.
    occupied: Option<&'a mut [u64; OCCUPIED_WORDS]>,
}

/// Words of a writer's record-occupancy bitmap (one bit per slot).
pub const OCCUPIED_WORDS: usize = SLOTS / 64;

impl<'a> TableWriter<'a> {
    /// A writer of the passwd table over `words` ([`FILE_WORDS`] long).
    pub fn new(words: &'a [AtomicU64]) -> Option<TableWriter<'a>> {
        TableWriter::of(Kind::Passwd, words)
    }

    /// A writer of the table of `kind` over `words`.
    pub fn of(kind: Kind, words: &'a [AtomicU64]) -> Option<TableWriter<'a>> {
        Some(TableWriter {
            table: Table::of(kind, words)?,
            occupied: None,
        })
    }

    /// Whether `slot` may hold a record (always true without a bitmap).
    fn maybe_occupied(&self, slot: usize) -> bool {
        self.occupied
            .as_ref()
            .is_none_or(|bits| bits[slot / 64] & (1 << (slot % 64)) != 0)
    }

    /// Unexpired records at `now`: what [`Table::live`] counts, reading only occupied slots.
    pub fn live(&self, now: u64) -> usize {
        self.table
            .live_among((0..SLOTS).filter(|&s| self.maybe_occupied(s)), now)
    }

    pub fn table(&self) -> Table<'a> {
        self.table
    }

    /// Writes a fresh header: live, with `salt` and `boot`. The magic goes last.
    pub fn init(&mut self, salt: [u64; 2], boot: [u64; 2]) {
        let w = self.table.words;
        w[H_VERSION].store(VERSION, Ordering::Relaxed);
        w[H_SIZE].store(FILE_SIZE as u64, Ordering::Relaxed);
        w[H_STATE].store(STATE_LIVE, Ordering::Relaxed);
        w[H_SALT].store(salt[0], Ordering::Relaxed);
        w[H_SALT + 1].store(salt[1], Ordering::Relaxed);
        w[H_BOOT].store(boot[0], Ordering::Relaxed);
        w[H_BOOT + 1].store(boot[1], Ordering::Relaxed);
        w[H_MAGIC].store(self.table.magic, Ordering::Release);
    }

    /// Marks the file given up: readers stop using it and map the file again.
    pub fn retire(&mut self) {
        self.table.words[H_STATE].store(STATE_RETIRED, Ordering::Release);
    }

    /// One seqlock write of `slot`: `seq` odd, the words, `seq` even.
    fn write(&mut self, slot: usize, words: &[u64; RECORD_WORDS]) {
        let rec = self.table.record(slot);
        // The only writer: nobody else changes `seq`, and it is even between writes.
        let seq = rec[R_SEQ].load(Ordering::Relaxed);
        rec[R_SEQ].store(seq.wrapping_add(1), Ordering::Relaxed);
        // Orders the odd `seq` before every word below for a reader that sees any of them.
        fence(Ordering::Release);
        for (dst, src) in rec.iter().zip(words.iter()).skip(1) {
            dst.store(*src, Ordering::Relaxed);
        }
        rec[R_SEQ].store(seq.wrapping_add(2), Ordering::Release);
        if let Some(bits) = self.occupied.as_mut() {
            let (word, bit) = ((slot % SLOTS) / 64, 1u64 << (slot % 64));
            if words[R_EXPIRY] == 0 {
                bits[word] &= !bit;
            } else {
                bits[word] |= bit;
            }
        }
    }

    /// Caches `entry` for `name` until `expiry` (CLOCK_MONOTONIC ns), replacing the same name's
    /// record, else an empty or expired slot, else the one that expires soonest. False when the
    /// entry's strings do not fit a record (it is then simply not cached).
    pub fn insert(&mut self, name: &[u8], entry: &PasswdEntry, expiry: u64, now: u64) -> bool {
        let fields = [
            entry.name.as_bytes(),
            entry.gecos.as_bytes(),
            entry.dir.as_bytes(),
            entry.shell.as_bytes(),
        ];
        let ids = u64::from(entry.uid) | (u64::from(entry.gid) << 32);
        self.insert_record(name, ids, fields, expiry, now)
    }

    /// Stores a numbers word and four strings for `name` until `expiry` (tables other than
    /// passwd); false when the strings do not fit a record or the expiry is zero.
    pub fn insert_record(
        &mut self,
        name: &[u8],
        ids: u64,
        fields: [&[u8]; 4],
        expiry: u64,
        now: u64,
    ) -> bool {
        let total: usize = fields.iter().map(|f| f.len()).sum();
        if total > DATA_BYTES || expiry == 0 {
            return false;
        }
        let (key, mut words) = self.record_for(name, expiry);
        words[R_IDS] = ids;
        let mut lens = 0u64;
        let mut data = [0u8; DATA_BYTES];
        let mut at = 0;
        for (i, f) in fields.iter().enumerate() {
            lens |= (f.len() as u64) << (16 * i);
            data[at..at + f.len()].copy_from_slice(f);
            at += f.len();
        }
        words[R_LENS] = lens;
        for (w, chunk) in words[R_DATA..].iter_mut().zip(data.chunks_exact(8)) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            *w = u64::from_le_bytes(b);
        }
        self.place(key, &words, now);
        true
    }

    /// Caches that `name` is no alias the daemon serves, until `expiry`. False for a zero
    /// expiry (nothing is cached).
    pub fn insert_not_an_alias(&mut self, name: &[u8], expiry: u64, now: u64) -> bool {
        if expiry == 0 {
            return false;
        }
        let (key, mut words) = self.record_for(name, expiry);
        words[R_LENS] = NOT_AN_ALIAS;
        self.place(key, &words, now);
        true
    }

    /// The key of `name` and a record for it with `expiry` and that key, the rest zero.
    fn record_for(&self, name: &[u8], expiry: u64) -> ([u64; 2], [u64; RECORD_WORDS]) {
        let key = key(self.table.salt(), name);
        let mut words = [0u64; RECORD_WORDS];
        words[R_EXPIRY] = expiry;
        words[R_KEY] = key[0];
        words[R_KEY + 1] = key[1];
        (key, words)
    }

    /// Writes `words` into the slot of `key`: the record of the same key, else an empty or
    /// expired slot, else the one that expires soonest.
    fn place(&mut self, key: [u64; 2], words: &[u64; RECORD_WORDS], now: u64) {
        let home = key[0] as usize;
        let mut same = None;
        let mut free = None;
        let mut soonest: Option<(usize, u64)> = None;
        for i in 0..PROBE {
            let slot = home.wrapping_add(i) % SLOTS;
            let rec = self.table.record(slot);
            // The writer's own words: no other process writes them.
            let e = rec[R_EXPIRY].load(Ordering::Relaxed);
            let k = [
                rec[R_KEY].load(Ordering::Relaxed),
                rec[R_KEY + 1].load(Ordering::Relaxed),
            ];
            if e != 0 && k == key {
                same = Some(slot);
                break;
            }
            if free.is_none() && (e == 0 || e <= now) {
                free = Some(slot);
            }
            if !matches!(soonest, Some((_, s)) if s <= e) {
                soonest = Some((slot, e));
            }
        }
        let slot = same
            .or(free)
            .or(soonest.map(|(s, _)| s))
            .unwrap_or(home % SLOTS);
        self.write(slot, words);
    }

    /// Empties every slot; returns how many held an unexpired entry at `now`.
    pub fn clear(&mut self, now: u64) -> usize {
        let mut live = 0;
        for slot in 0..SLOTS {
            if !self.maybe_occupied(slot) {
                continue;
            }
            let e = self.table.record(slot)[R_EXPIRY].load(Ordering::Relaxed);
            if e != 0 {
                if e > now {
                    live += 1;
                }
                self.write(slot, &[0; RECORD_WORDS]);
            }
        }
        live
    }
}

/// A shared mapping of a cache file, unmapped when dropped. Private: a read-only mapping must
/// never be handed to anything that stores (only [`Table`], which has no store, reads it).
struct Mapping {
    ptr: *mut libc::c_void,
    len: usize,
}

// SAFETY: the mapping is plain shared memory, only ever accessed through `&[AtomicU64]`
// (atomic loads and stores), which is Sync; the raw pointer is owned and unmapped once, in drop.
unsafe impl Send for Mapping {}
// SAFETY: as for Send: every access through `words` is atomic.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps the first [`FILE_SIZE`] bytes of `file`, read-only or read-write, shared.
    fn new(file: &File, writable: bool) -> io::Result<Mapping> {
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        // SAFETY: a fresh mapping at an address of the kernel's choosing; it aliases no Rust
        // object. The descriptor is valid for the call (borrowed from `file`).
        let ptr = unsafe {
            libc::mmap(
                ptr::null_mut(),
                FILE_SIZE,
                prot,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping {
            ptr,
            len: FILE_SIZE,
        })
    }

    /// The mapped words.
    fn words(&self) -> &[AtomicU64] {
        // SAFETY: `ptr` is page-aligned (so aligned for u64), valid for `len` bytes for as long
        // as `self` lives (unmapped only in drop), and `len` is a multiple of 8. AtomicU64 has
        // the layout of u64, and every access through the slice is atomic, so concurrent
        // changes by the writer process are not data races. A read-only mapping is only ever
        // loaded from (Table has no store), which is allowed for native-width atomics.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<AtomicU64>(), self.len / 8) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned, unmapped only here; no reference
        // from `words` outlives `self`.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

/// Why a reader does not use a cache file. Readers ignore the reason (they fall back to the
/// socket); tests look at it.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    Open,
    NotRegular,
    Owner(u32),
    Writable(u32),
    Size(u64),
    Map,
    Layout,
    Retired,
    OtherBoot,
}

/// A reader's mapping of a trusted cache file.
pub struct ReadMap {
    map: Mapping,
    kind: Kind,
}

impl ReadMap {
    /// Maps the cache file at `path` read-only if it can be trusted by a process of effective
    /// uid `euid`: a regular file (not a symlink), owned by root or by `euid` (the rule the
    /// client applies to the socket's peer), writable by nobody else, of the expected size,
    /// layout and boot, and not retired.
    pub fn open(path: &Path, euid: u32) -> Result<ReadMap, Refused> {
        ReadMap::open_kind(path, euid, Kind::Passwd)
    }

    /// As [`ReadMap::open`], for the table of `kind`.
    pub fn open_kind(path: &Path, euid: u32, kind: Kind) -> Result<ReadMap, Refused> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(path)
            .map_err(|_| Refused::Open)?;
        let meta = file.metadata().map_err(|_| Refused::Open)?;
        if !meta.file_type().is_file() {
            return Err(Refused::NotRegular);
        }
        if meta.uid() != 0 && meta.uid() != euid {
            return Err(Refused::Owner(meta.uid()));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(Refused::Writable(meta.mode() & 0o7777));
        }
        if meta.len() != FILE_SIZE as u64 {
            return Err(Refused::Size(meta.len()));
        }
        let map = Mapping::new(&file, false).map_err(|_| Refused::Map)?;
        let table = Table::of(kind, map.words()).ok_or(Refused::Layout)?;
        if !table.layout_ok() {
            return Err(Refused::Layout);
        }
        if table.retired() {
            return Err(Refused::Retired);
        }
        if !of_this_boot(&file, table.boot()) {
            return Err(Refused::OtherBoot);
        }
        Ok(ReadMap { map, kind })
    }

    pub fn table(&self) -> Option<Table<'_>> {
        Table::of(self.kind, self.map.words())
    }
}

/// The writer's mapping of the cache file it created.
pub struct WriteMap {
    map: Mapping,
    path: PathBuf,
    kind: Kind,
    /// The slots this writer has filled (the file starts empty).
    occupied: [u64; OCCUPIED_WORDS],
}

fn random_salt() -> io::Result<[u64; 2]> {
    let mut buf = [0u8; 16];
    // SAFETY: `buf` is valid for writes of its length for the duration of the call.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n != buf.len() as isize {
        return Err(io::Error::other("getrandom gave no salt"));
    }
    let mut a = [0u8; 8];
    let mut b = [0u8; 8];
    a.copy_from_slice(&buf[..8]);
    b.copy_from_slice(&buf[8..]);
    Ok([u64::from_le_bytes(a), u64::from_le_bytes(b)])
}

/// Opens an existing cache file at `path` for writing, if it is one (a regular file of the
/// right size and magic), so that it can be retired.
fn open_old(path: &Path, kind: Kind) -> Option<Mapping> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    let meta = file.metadata().ok()?;
    if !meta.file_type().is_file() || meta.len() != FILE_SIZE as u64 {
        return None;
    }
    let map = Mapping::new(&file, true).ok()?;
    Table::of(kind, map.words())?.layout_ok().then_some(map)
}

/// Gives the file its [`FILE_SIZE`] bytes as allocated blocks, not a sparse hole: a store
/// through the shared mapping into a page without a block would need one from the
/// filesystem, and on a full filesystem the kernel answers that page fault with SIGBUS,
/// which kills the daemon. Allocated up front, a full filesystem fails here, as an error.
fn allocate(file: &File) -> io::Result<()> {
    // SAFETY: the descriptor is valid for the call (borrowed from `file`); posix_fallocate
    // touches no memory of ours. glibc falls back to writing zeros where the filesystem has
    // no fallocate.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, FILE_SIZE as libc::off_t) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    // posix_fallocate only extends; the file is new, so this is its size already.
    file.set_len(FILE_SIZE as u64)
}

impl WriteMap {
    /// Creates a new, empty cache file at `path` (mode 0644), every block allocated (see
    /// [`allocate`]; a full filesystem is an error here, never a SIGBUS later): written under a temporary name
    /// in the same directory, renamed over `path`, and only then is the file it replaced (if
    /// it was a cache file) marked retired, so that its readers map the new one.
    pub fn create(path: &Path) -> io::Result<WriteMap> {
        WriteMap::create_kind(path, Kind::Passwd)
    }

    /// As [`WriteMap::create`], for the table of `kind` (its mode: 0644 or 0600).
    pub fn create_kind(path: &Path, kind: Kind) -> io::Result<WriteMap> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = path
            .file_name()
            .ok_or_else(|| io::Error::other("the cache path has no file name"))?;
        let tmp = dir.join(format!(
            ".{}.{}.tmp",
            name.to_string_lossy(),
            std::process::id()
        ));
        let boot = boot_id().ok_or_else(|| io::Error::other("cannot read the boot id"))?;
        let salt = random_salt()?;
        let _ = std::fs::remove_file(&tmp);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(kind.mode())
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)?;
        let made = (|| {
            // The umask may have taken bits away; readers need the kind's mode exactly.
            file.set_permissions(std::fs::Permissions::from_mode(kind.mode()))?;
            allocate(&file)?;
            let map = Mapping::new(&file, true)?;
            let mut writer = TableWriter::of(kind, map.words())
                .ok_or_else(|| io::Error::other("mapping of the wrong size"))?;
            writer.init(salt, boot);
            let old = open_old(path, kind);
            std::fs::rename(&tmp, path)?;
            if let Some(old) = old {
                if let Some(mut w) = TableWriter::of(kind, old.words()) {
                    w.retire();
                }
            }
            Ok(map)
        })();
        match made {
            Ok(map) => Ok(WriteMap {
                map,
                path: path.to_path_buf(),
                kind,
                occupied: [0; OCCUPIED_WORDS],
            }),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The writer over the mapping. Callers keep one at a time (see [`TableWriter`]).
    pub fn writer(&mut self) -> Option<TableWriter<'_>> {
        Some(TableWriter {
            table: Table::of(self.kind, self.map.words())?,
            occupied: Some(&mut self.occupied),
        })
    }

    /// Empties the table, marks the file retired and removes it (a clean stop).
    pub fn retire_and_remove(&mut self) {
        if let Some(mut w) = self.writer() {
            w.clear(now_ns());
            w.retire();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A process's mapping of one of the daemon's tables, for the modules: mapped once, looked at
/// before the socket, mapped again when the daemon retires the file. Process-global (a
/// `static`), no per-thread state, no lock: one pointer to the mapping in force, swapped with
/// compare-and-swap. A mapping that has been replaced is never unmapped (another thread may
/// still be reading it), so the number of mappings a process makes is capped
/// ([`MAX_MAPPINGS`]); past the cap the caller uses the socket only. After a fork the child
/// inherits the mapping and the pointer, and goes on using them.
pub struct SharedReader {
    kind: Kind,
    current: AtomicPtr<Mapped>,
    mappings: AtomicU32,
}

/// Mappings one process makes at most, per table (a daemon restart or a changed socket path
/// costs one).
pub const MAX_MAPPINGS: u32 = 16;

struct Mapped {
    path: PathBuf,
    map: ReadMap,
}

impl SharedReader {
    pub const fn new(kind: Kind) -> SharedReader {
        SharedReader {
            kind,
            current: AtomicPtr::new(ptr::null_mut()),
            mappings: AtomicU32::new(0),
        }
    }

    /// The table of the daemon listening at `socket`, if its file can be trusted by a process
    /// of effective uid `euid`. Without a usable file, every call tries to open it again: a
    /// failed `open` costs about a microsecond, next to the socket round trip that follows.
    pub fn table(&'static self, socket: &Path, euid: u32) -> Option<Table<'static>> {
        let path = path_of(socket, self.kind)?;
        let old = self.current.load(Ordering::Acquire);
        if !old.is_null() {
            // SAFETY: a non-null `current` points to a `Mapped` leaked by Box::into_raw below
            // and never freed: it lives for the rest of the process.
            let m: &'static Mapped = unsafe { &*old };
            if m.path.as_os_str() == path.as_os_str() {
                if let Some(t) = m.map.table().filter(|t| !t.retired()) {
                    return Some(t);
                }
            }
        }
        if self.mappings.load(Ordering::Relaxed) >= MAX_MAPPINGS {
            return None;
        }
        let map = ReadMap::open_kind(&path, euid, self.kind).ok()?;
        let new = Box::into_raw(Box::new(Mapped { path, map }));
        match self
            .current
            .compare_exchange(old, new, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {
                self.mappings.fetch_add(1, Ordering::Relaxed);
                // The old mapping (if any) is leaked on purpose: other threads may be reading
                // it.
                // SAFETY: `new` came from Box::into_raw and is now published, never freed.
                let m: &'static Mapped = unsafe { &*new };
                m.map.table()
            }
            Err(_) => {
                // Another thread published a mapping first; ours was never shared.
                // SAFETY: `new` came from Box::into_raw above and no other thread has seen it.
                drop(unsafe { Box::from_raw(new) });
                None
            }
        }
    }
}

#[cfg(test)]
mod tests;
