#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use rstest::rstest;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn words() -> Vec<AtomicU64> {
    (0..FILE_WORDS).map(|_| AtomicU64::new(0)).collect()
}

fn entry(name: &str, uid: u32) -> PasswdEntry {
    PasswdEntry {
        name: name.into(),
        uid,
        gid: uid + 1,
        gecos: format!("{name} (test)"),
        dir: format!("/home/{name}"),
        shell: "/bin/sh".into(),
    }
}

const SEC: u64 = 1_000_000_000;

/// Keys against digests computed independently (coreutils `sha256sum` of the salt's 16 bytes
/// then the name, e.g. `printf '\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0abc' | sha256sum`): a zero
/// salt, a salt whose bytes show the words' order and byte order (00 01 … 0f), and a name that
/// takes the input past one 64-byte block.
#[rstest]
#[case::zero_salt([0, 0], b"abc".to_vec(), "277e7ff6d232b9763f4a66e8d05d210d")]
#[case::salt_byte_order(
    [0x0706050403020100, 0x0f0e0d0c0b0a0908],
    b"John.Doe@Company.com".to_vec(),
    "ee25ac5d164e2336ba4e8b8cd24a789c"
)]
#[case::two_blocks(
    [0x0706050403020100, 0x0f0e0d0c0b0a0908],
    vec![b'a'; 100],
    "a515897c6cb30ec25250b4f17011e85e"
)]
fn keys_are_the_first_16_bytes_of_salted_sha256(
    #[case] salt: [u64; 2],
    #[case] name: Vec<u8>,
    #[case] digest_head: &str,
) {
    let hex = |w: u64| -> String { w.to_le_bytes().iter().map(|b| format!("{b:02x}")).collect() };
    let k = key(salt, &name);
    assert_eq!(hex(k[0]) + &hex(k[1]), digest_head);
}

#[test]
fn keys_depend_on_the_salt_and_the_exact_name() {
    let a = key([1, 2], b"John.Doe@Company.com");
    assert_eq!(a, key([1, 2], b"John.Doe@Company.com"));
    assert_ne!(a, key([1, 3], b"John.Doe@Company.com"));
    assert_ne!(a, key([1, 2], b"john.doe@company.com"));
}

#[test]
fn insert_then_lookup_until_expiry() {
    let w = words();
    let mut t = TableWriter::new(&w).unwrap();
    t.init([7, 8], [1, 2]);
    let table = t.table();
    assert!(table.layout_ok() && !table.retired());
    assert_eq!(table.lookup(b"alias", 100), None);
    assert!(t.insert(b"alias", &entry("jdoe", 1003), 10 * SEC, SEC));
    assert_eq!(
        table.lookup(b"alias", 2 * SEC),
        Some(Cached::Entry(entry("jdoe", 1003)))
    );
    assert_eq!(table.lookup(b"ALIAS", 2 * SEC), None, "names are exact");
    assert_eq!(
        table.lookup(b"alias", 10 * SEC),
        None,
        "expired at its expiry"
    );
    assert_eq!(table.live(2 * SEC), 1);
}

#[test]
fn the_alias_text_is_not_in_the_table() {
    let w = words();
    let mut t = TableWriter::new(&w).unwrap();
    t.init([7, 8], [1, 2]);
    let alias = b"secret.person@company.com";
    assert!(t.insert(alias, &entry("jdoe", 1003), 10 * SEC, SEC));
    let bytes: Vec<u8> = w
        .iter()
        .flat_map(|x| x.load(Ordering::Relaxed).to_le_bytes())
        .collect();
    assert!(!bytes.windows(alias.len()).any(|win| win == alias));
    assert!(bytes.windows(4).any(|win| win == b"jdoe"));
}

#[test]
fn the_same_name_is_overwritten_in_place() {
    let w = words();
    let mut t = TableWriter::new(&w).unwrap();
    t.init([7, 8], [1, 2]);
    assert!(t.insert(b"alias", &entry("jdoe", 1003), 10 * SEC, SEC));
    assert!(t.insert(b"alias", &entry("alice", 1001), 20 * SEC, SEC));
    assert_eq!(
        t.table().lookup(b"alias", 15 * SEC),
        Some(Cached::Entry(entry("alice", 1001)))
    );
    assert_eq!(t.table().live(SEC), 1);
}

#[test]
fn clear_empties_and_retire_is_seen() {
    let w = words();
    let mut t = TableWriter::new(&w).unwrap();
    t.init([7, 8], [1, 2]);
    for i in 0..100u32 {
        assert!(t.insert(
            format!("a{i}").as_bytes(),
            &entry("u", 2000 + i),
            10 * SEC,
            SEC
        ));
    }
    assert_eq!(t.table().live(SEC), 100);
    assert_eq!(t.clear(SEC), 100);
    assert_eq!(t.table().live(0), 0);
    assert_eq!(t.table().lookup(b"a5", SEC), None);
    assert!(!t.table().retired());
    t.retire();
    assert!(t.table().retired());
}

#[test]
fn entries_too_large_for_a_record_are_not_cached() {
    let w = words();
    let mut t = TableWriter::new(&w).unwrap();
    t.init([7, 8], [1, 2]);
    let mut e = entry("jdoe", 1003);
    e.gecos = "x".repeat(DATA_BYTES);
    assert!(!t.insert(b"big", &e, 10 * SEC, SEC));
    assert_eq!(t.table().lookup(b"big", SEC), None);
    // Exactly full fits.
    e.gecos = "x".repeat(DATA_BYTES - e.name.len() - e.dir.len() - e.shell.len());
    assert!(t.insert(b"full", &e, 10 * SEC, SEC));
    assert_eq!(t.table().lookup(b"full", SEC), Some(Cached::Entry(e)));
}

/// Names whose keys share a home slot under `salt`.
fn colliding(salt: [u64; 2], n: usize) -> Vec<String> {
    let home = |name: &str| key(salt, name.as_bytes())[0] as usize % SLOTS;
    let target = home("c0");
    let mut names = vec!["c0".to_string()];
    let mut i = 1;
    while names.len() < n {
        let name = format!("c{i}");
        if home(&name) == target {
            names.push(name);
        }
        i += 1;
    }
    names
}

#[test]
fn colliding_names_share_the_neighbourhood() {
    let salt = [11, 12];
    let w = words();
    let mut t = TableWriter::new(&w).unwrap();
    t.init(salt, [1, 2]);
    let names = colliding(salt, PROBE);
    for (i, n) in names.iter().enumerate() {
        assert!(t.insert(n.as_bytes(), &entry(n, 3000 + i as u32), 100 * SEC, SEC));
    }
    for (i, n) in names.iter().enumerate() {
        assert_eq!(
            t.table().lookup(n.as_bytes(), SEC),
            Some(Cached::Entry(entry(n, 3000 + i as u32))),
            "{n}"
        );
    }
}

#[test]
fn a_full_neighbourhood_loses_the_entry_that_expires_soonest() {
    let salt = [11, 12];
    let w = words();
    let mut t = TableWriter::new(&w).unwrap();
    t.init(salt, [1, 2]);
    let names = colliding(salt, PROBE + 1);
    // Expiries 100 s, 101 s, … except the fourth, which expires first.
    for (i, n) in names[..PROBE].iter().enumerate() {
        let expiry = if i == 3 {
            50 * SEC
        } else {
            (100 + i as u64) * SEC
        };
        assert!(t.insert(n.as_bytes(), &entry(n, 3000), expiry, SEC));
    }
    let last = &names[PROBE];
    assert!(t.insert(last.as_bytes(), &entry(last, 4000), 200 * SEC, SEC));
    assert_eq!(
        t.table().lookup(last.as_bytes(), SEC),
        Some(Cached::Entry(entry(last, 4000)))
    );
    assert_eq!(t.table().lookup(names[3].as_bytes(), SEC), None);
    for (i, n) in names[..PROBE].iter().enumerate().filter(|(i, _)| *i != 3) {
        assert!(t.table().lookup(n.as_bytes(), SEC).is_some(), "{i} {n}");
    }
    // An expired slot is reused before a live one is evicted.
    let extra = colliding(salt, PROBE + 2).pop().unwrap();
    assert!(t.insert(extra.as_bytes(), &entry(&extra, 5000), 300 * SEC, 101 * SEC));
    assert!(t.table().lookup(extra.as_bytes(), 101 * SEC).is_some());
    assert_eq!(
        t.table().lookup(names[0].as_bytes(), 99 * SEC),
        None,
        "names[0] expired at 100 s and was the first expired slot"
    );
    assert!(t.table().lookup(names[1].as_bytes(), 99 * SEC).is_some());
}

/// An entry whose every field is derived from `c`, so that a mix of two versions shows.
fn derived(c: u64) -> PasswdEntry {
    let n = (c % 200) as usize;
    PasswdEntry {
        name: format!("u{c}"),
        uid: c as u32,
        gid: !(c as u32),
        gecos: format!("{c}:").repeat(1 + n / 8),
        dir: format!("/home/{}", "d".repeat(n)),
        shell: format!("/bin/{c}"),
    }
}

#[test]
fn concurrent_readers_never_see_a_torn_record() {
    let salt = [5, 6];
    let w: Arc<Vec<AtomicU64>> = Arc::new(words());
    TableWriter::new(&w).unwrap().init(salt, [1, 2]);
    let stop = Arc::new(AtomicBool::new(false));
    let names = colliding(salt, 3);
    let readers: Vec<_> = (0..3)
        .map(|r| {
            let (w, stop, names) = (w.clone(), stop.clone(), names.clone());
            std::thread::spawn(move || {
                let t = Table::new(&w).unwrap();
                let (mut hits, mut misses) = (0u64, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    let name = &names[(hits + misses + r) as usize % names.len()];
                    match t.lookup(name.as_bytes(), 1) {
                        Some(Cached::Entry(got)) => {
                            let c: u64 = got.name[1..].parse().expect("a derived name");
                            assert_eq!(got, derived(c), "torn record");
                            hits += 1;
                        }
                        Some(Cached::NotAnAlias) => panic!("no such record was written"),
                        None => misses += 1,
                    }
                }
                (hits, misses)
            })
        })
        .collect();
    let writer = {
        let (w, stop, names) = (w.clone(), stop.clone(), names.clone());
        std::thread::spawn(move || {
            let mut t = TableWriter::new(&w).unwrap();
            let mut c = 0u64;
            let end = Instant::now() + Duration::from_millis(1500);
            while Instant::now() < end {
                for (i, name) in names.iter().enumerate() {
                    c += 1;
                    assert!(t.insert(name.as_bytes(), &derived(c), u64::MAX - 1, 2));
                    if c % 1000 == i as u64 {
                        t.clear(2);
                    }
                }
            }
            stop.store(true, Ordering::Relaxed);
            c
        })
    };
    let writes = writer.join().unwrap();
    let mut total_hits = 0;
    for r in readers {
        let (hits, _misses) = r.join().unwrap();
        total_hits += hits;
    }
    assert!(writes > 1000, "{writes} writes");
    assert!(total_hits > 1000, "{total_hits} consistent hits");
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("am-memcache-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// A record both tables can hold (the strings of a passwd entry, or of a decision).
fn put(w: &mut WriteMap, name: &[u8]) {
    assert!(w.writer().unwrap().insert_record(
        name,
        1003,
        [b"jdoe", b"gecos", b"/home/jdoe", b"/bin/sh"],
        now_ns() + 60 * SEC,
        now_ns(),
    ));
}

fn got(t: &Table<'_>, name: &[u8]) -> Option<String> {
    t.lookup_record(name, now_ns()).map(|r| r.fields[0].clone())
}

// The file tests run for both tables: the decision table (issue 16) passes the same trust,
// retire and boot rules as passwd.cache, with its own mode.

#[rstest]
fn files_are_created_mapped_and_retired_when_replaced(
    #[values(Kind::Passwd, Kind::Policy)] kind: Kind,
) {
    let dir = temp_dir(&format!("replace-{kind:?}"));
    let path = dir.join(kind.file_name());
    let mut first = WriteMap::create_kind(&path, kind).unwrap();
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, kind.mode());
    assert_eq!(meta.len(), FILE_SIZE as u64);
    put(&mut first, b"alias");
    let reader = ReadMap::open_kind(&path, euid(), kind).unwrap();
    let t = reader.table().unwrap();
    assert_eq!(got(&t, b"alias").as_deref(), Some("jdoe"));
    // A second writer (a restarted daemon) replaces the file and retires the old one.
    let _second = WriteMap::create_kind(&path, kind).unwrap();
    assert!(t.retired());
    let again = ReadMap::open_kind(&path, euid(), kind).unwrap();
    assert_eq!(got(&again.table().unwrap(), b"alias"), None);
    drop(first);
    let _ = std::fs::remove_dir_all(&dir);
}

#[rstest]
fn a_clean_stop_retires_and_removes_the_file(#[values(Kind::Passwd, Kind::Policy)] kind: Kind) {
    let dir = temp_dir(&format!("stop-{kind:?}"));
    let path = dir.join(kind.file_name());
    let mut w = WriteMap::create_kind(&path, kind).unwrap();
    let reader = ReadMap::open_kind(&path, euid(), kind).unwrap();
    w.retire_and_remove();
    assert!(reader.table().unwrap().retired());
    assert!(!path.exists());
    assert_eq!(
        ReadMap::open_kind(&path, euid(), kind).err(),
        Some(Refused::Open)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[rstest]
fn untrusted_files_are_refused(#[values(Kind::Passwd, Kind::Policy)] kind: Kind) {
    let dir = temp_dir(&format!("trust-{kind:?}"));
    let path = dir.join(kind.file_name());
    let _w = WriteMap::create_kind(&path, kind).unwrap();
    assert!(ReadMap::open_kind(&path, euid(), kind).is_ok());
    for writable in [0o020, 0o002, 0o022] {
        let mode = kind.mode() | writable;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        assert_eq!(
            ReadMap::open_kind(&path, euid(), kind).err(),
            Some(Refused::Writable(mode))
        );
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(kind.mode())).unwrap();
    // Owned by someone who is neither root nor the reader.
    let owner = std::fs::metadata(&path).unwrap().uid();
    if owner != 0 {
        assert_eq!(
            ReadMap::open_kind(&path, owner + 1, kind).err(),
            Some(Refused::Owner(owner))
        );
    }
    // A symlink to a good file is not followed.
    let link = dir.join("link");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    assert_eq!(
        ReadMap::open_kind(&link, euid(), kind).err(),
        Some(Refused::Open)
    );
    // Wrong size, wrong magic, and the other table's file.
    let short = dir.join("short");
    std::fs::write(&short, [0u8; 64]).unwrap();
    assert_eq!(
        ReadMap::open_kind(&short, euid(), kind).err(),
        Some(Refused::Size(64))
    );
    let zeros = dir.join("zeros");
    std::fs::write(&zeros, vec![0u8; FILE_SIZE]).unwrap();
    assert_eq!(
        ReadMap::open_kind(&zeros, euid(), kind).err(),
        Some(Refused::Layout)
    );
    let other_kind = if kind == Kind::Passwd {
        Kind::Policy
    } else {
        Kind::Passwd
    };
    let other = dir.join("other");
    let _o = WriteMap::create_kind(&other, other_kind).unwrap();
    assert_eq!(
        ReadMap::open_kind(&other, euid(), kind).err(),
        Some(Refused::Layout)
    );
    // A directory.
    assert_eq!(
        ReadMap::open_kind(&dir, euid(), kind).err(),
        Some(Refused::NotRegular)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Whether `dir` is on tmpfs or ramfs (where the boot id is not read).
fn volatile(dir: &Path) -> bool {
    on_volatile_fs(&File::open(dir).unwrap())
}

/// A file whose header names `boot` instead of this boot, in a new directory under `parent`.
fn file_of_boot(parent: &Path, tag: &str, kind: Kind, boot: [u64; 2]) -> (PathBuf, WriteMap) {
    let dir = parent.join(format!("am-memcache-{tag}-{kind:?}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(kind.file_name());
    let mut w = WriteMap::create_kind(&path, kind).unwrap();
    w.writer().unwrap().init([1, 1], boot);
    (dir, w)
}

#[rstest]
fn a_file_of_another_boot_is_refused(#[values(Kind::Passwd, Kind::Policy)] kind: Kind) {
    // Next to the test binary: the build's filesystem, which (unlike tmpfs) outlives a boot.
    let exe = std::env::current_exe().unwrap();
    let parent = exe.parent().unwrap();
    if volatile(parent) {
        eprintln!(
            "skipped: {} is on tmpfs, where boots are not compared",
            parent.display()
        );
        return;
    }
    let boot = boot_id().unwrap();
    let (dir, _w) = file_of_boot(parent, "boot", kind, [boot[0] ^ 1, boot[1]]);
    assert_eq!(
        ReadMap::open_kind(&dir.join(kind.file_name()), euid(), kind).err(),
        Some(Refused::OtherBoot)
    );
    // The same file of this boot is used.
    let (dir2, _w2) = file_of_boot(parent, "this-boot", kind, boot);
    assert!(ReadMap::open_kind(&dir2.join(kind.file_name()), euid(), kind).is_ok());
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&dir2);
}

#[test]
fn on_tmpfs_the_boot_id_is_not_read() {
    // /dev/shm is tmpfs on every systemd host, as /run is: a file there cannot be of another
    // boot, whatever its header says.
    let shm = Path::new("/dev/shm");
    if !shm.is_dir() || !volatile(shm) {
        eprintln!("skipped: no tmpfs at /dev/shm");
        return;
    }
    let (dir, _w) = file_of_boot(shm, "tmpfs", Kind::Passwd, [7, 7]);
    assert!(ReadMap::open(&dir.join(FILE_NAME), euid()).is_ok());
    let _ = std::fs::remove_dir_all(&dir);
}

#[rstest]
#[case(b"9ff1faac-ffd9-4071-83e1-fd72ee91790f\n", Some([0x9ff1_faac_ffd9_4071, 0x83e1_fd72_ee91_790f]))]
#[case(b"9ff1faacffd9407183e1fd72ee91790f", Some([0x9ff1_faac_ffd9_4071, 0x83e1_fd72_ee91_790f]))]
#[case(b"9ff1faac-ffd9-4071-83e1-fd72ee91790", None)]
#[case(b"9ff1faac-ffd9-4071-83e1-fd72ee91790f0", None)]
#[case(b"9ff1faac-ffd9-4071-83e1-fd72ee91790g", None)]
#[case(b"", None)]
fn boot_ids_are_parsed(#[case] text: &[u8], #[case] want: Option<[u64; 2]>) {
    assert_eq!(parse_boot_id(text), want);
}

#[test]
fn this_boot_has_an_id() {
    assert!(boot_id().is_some());
}

#[test]
fn the_cache_file_sits_next_to_the_socket() {
    assert_eq!(
        path_for(Path::new("/run/accountmap/accountmapd.sock")),
        Some(PathBuf::from("/run/accountmap/passwd.cache"))
    );
    assert_eq!(
        path_for(Path::new("s.sock")),
        Some(PathBuf::from(FILE_NAME))
    );
}

#[test]
fn garbage_records_are_misses_or_well_formed_entries_never_a_panic() {
    // A file a reader maps could hold anything (a bug, a disk error): records with the right
    // key but random lengths, ids and bytes. Every lookup must end in None or an entry whose
    // strings are exactly what the lengths say; nothing may panic or read out of bounds.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut rand = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let salt = [3, 4];
    let w = words();
    TableWriter::new(&w).unwrap().init(salt, [1, 2]);
    let t = Table::new(&w).unwrap();
    for round in 0..2000u32 {
        let name = format!("n{round}");
        let k = key(salt, name.as_bytes());
        let slot = (k[0] as usize) % SLOTS;
        let start = HEADER_WORDS + slot * RECORD_WORDS;
        for (i, word) in w[start..start + RECORD_WORDS].iter().enumerate() {
            word.store(rand(), Ordering::Relaxed);
            if i == R_SEQ {
                word.store(rand() & !1, Ordering::Relaxed);
            }
        }
        w[start + R_EXPIRY].store(u64::MAX, Ordering::Relaxed);
        w[start + R_KEY].store(k[0], Ordering::Relaxed);
        w[start + R_KEY + 1].store(k[1], Ordering::Relaxed);
        if round % 2 == 0 {
            // Small lengths, so that some records decode (when the bytes are UTF-8).
            let lens = rand() & 0x0007_0007_0007_0007;
            w[start + R_LENS].store(lens, Ordering::Relaxed);
        }
        if let Some(Cached::Entry(e)) = t.lookup(name.as_bytes(), 1) {
            let total = e.name.len() + e.gecos.len() + e.dir.len() + e.shell.len();
            assert!(total <= DATA_BYTES);
        }
    }
}

/// Issue 14, finding 3: the file is created with every block allocated, not as a sparse hole
/// that a store through the mapping would have to fill (SIGBUS on a full filesystem).
#[test]
fn a_new_file_has_every_block_allocated() {
    use std::os::unix::fs::MetadataExt;
    let dir = temp_dir("allocated");
    let path = dir.join(FILE_NAME);
    let _map = WriteMap::create(&path).unwrap();
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.len(), FILE_SIZE as u64);
    // st_blocks counts 512-byte units actually allocated.
    assert!(
        meta.blocks() * 512 >= FILE_SIZE as u64,
        "{} of {FILE_SIZE} bytes allocated: the file is sparse",
        meta.blocks() * 512
    );
    drop(_map);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_name_that_is_no_alias_is_cached_as_such_and_replaced_by_an_entry() {
    let w = words();
    let mut t = TableWriter::new(&w).unwrap();
    t.init([7, 8], [1, 2]);
    assert!(
        !t.insert_not_an_alias(b"nobody-here", 0, SEC),
        "zero expiry: not cached"
    );
    assert!(t.insert_not_an_alias(b"nobody-here", 10 * SEC, SEC));
    assert_eq!(
        t.table().lookup(b"nobody-here", 5 * SEC),
        Some(Cached::NotAnAlias)
    );
    assert_eq!(t.table().lookup(b"nobody-here", 11 * SEC), None, "expired");
    assert_eq!(
        t.table().lookup(b"Nobody-Here", 5 * SEC),
        None,
        "names are exact"
    );
    // The same name becoming an alias takes the same record.
    assert!(t.insert(b"nobody-here", &entry("jdoe", 1003), 20 * SEC, SEC));
    assert_eq!(
        t.table().lookup(b"nobody-here", 5 * SEC),
        Some(Cached::Entry(entry("jdoe", 1003)))
    );
    assert_eq!(t.table().live(SEC), 1);
}

/// The writer of a file keeps a bitmap of the slots it filled, so that a flush and `status`
/// read only those (reading every record would map the whole file into the daemon, 2 MiB of
/// RSS per table): the same results as reading everything.
#[test]
fn a_file_writer_clears_and_counts_by_its_bitmap_as_a_full_scan_would() {
    let dir = temp_dir("bitmap");
    let path = dir.join(FILE_NAME);
    let mut w = WriteMap::create(&path).unwrap();
    let now = now_ns();
    for i in 0..300u32 {
        let name = format!("alias{i}");
        let expiry = if i % 3 == 0 { now - 1 } else { now + 60 * SEC };
        assert!(w.writer().unwrap().insert(
            name.as_bytes(),
            &entry("jdoe", 1003),
            expiry.max(1),
            1
        ));
    }
    // Replacing a record keeps its slot counted once.
    assert!(w
        .writer()
        .unwrap()
        .insert(b"alias1", &entry("alice", 1001), now + 60 * SEC, now));
    let full = w.writer().unwrap().table().live(now);
    assert_eq!(w.writer().unwrap().live(now), full);
    assert_eq!(full, 200);
    assert_eq!(w.writer().unwrap().clear(now), 200);
    assert_eq!(w.writer().unwrap().live(0), 0);
    let t = w.writer().unwrap().table();
    assert_eq!(t.live(0), 0, "every record was emptied, expired ones too");
    assert!(t.lookup(b"alias1", now).is_none());
    let _ = std::fs::remove_dir_all(&dir);
}
