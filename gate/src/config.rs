//! What the gate reads of `accountmap.toml` (SPEC "Web gate"): its own `[gate]` keys, the
//! provider and client of `[oidc]` (the ID tokens it obtains must be for the client accountmapd
//! checks them against) and `[daemon] socket`. The main file and then `conf.d/*.toml` in name
//! order, a later file's key winning, as accountmapd reads them. The other sections are
//! accountmapd's: the gate neither reads their secrets nor judges them (`accountmapctl
//! check-config` validates the whole file, these keys included).

use std::fmt;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Google's discovery document, accountmapd's default provider too.
pub const GOOGLE_DISCOVERY: &str = "https://accounts.google.com/.well-known/openid-configuration";
/// The user header proxies send to RStudio Workbench by default: never accepted here, see
/// [`Mode::Header`].
pub const RSTUDIO_DEFAULT_HEADER: &str = "x-rstudio-username";
const MAX_FILE_BYTES: u64 = 1 << 20;

/// How the gate learns who the browser user is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// An OpenID Connect authorization-code flow with PKCE against `[oidc]`'s provider.
    Oidc { client_secret_file: Option<PathBuf> },
    /// A trusted upstream proxy (oauth2-proxy, Authelia, a load balancer) names the user in
    /// `user_header`. Never RStudio's default `X-RStudio-Username`: a header anyone who can
    /// reach RStudio directly could set is an open door (RStudio's own guide, "Security
    /// considerations"), so the name must be one only the proxy knows to send. With
    /// `require_signature` (the default) each request also carries `X-Proxy-Signature` and
    /// `Date`, checked by accountmapd with `[proxy] hmac_key_file`.
    Header {
        user_header: String,
        require_signature: bool,
    },
}

/// How the gate encrypts the credentials it posts to rserver.
pub use crate::rserver::Scheme;

#[derive(Clone, Debug)]
pub struct GateConfig {
    pub listen: SocketAddr,
    /// RStudio's address as browsers see it, ending in `/`: scheme, host, port and root path.
    /// The gate's own pages are under `{public_url}gate/`.
    pub public_url: Url,
    /// rserver's own address, reached directly by the gate (not through the proxy).
    pub rserver_url: Url,
    pub mode: Mode,
    pub scopes: Vec<String>,
    /// The PAM service named in ticket requests (rserver runs `rstudio`).
    pub service: String,
    /// `None` (`"auto"`, the default): the scheme the key's format implies
    /// ([`crate::rserver::parse_public_key_with_scheme`]).
    pub rserver_encryption: Option<Scheme>,
    /// rserver's "Stay signed in" (`persist`).
    pub stay_signed_in: bool,
    pub discovery_endpoint: String,
    pub client_id: String,
    pub ca_file: Option<PathBuf>,
    pub socket: PathBuf,
    /// How long the gate waits for accountmapd, the provider and rserver, each.
    pub timeout: Duration,
}

/// A URL the gate builds others from: `scheme://authority` and a path that ends in `/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    pub scheme: String,
    pub authority: String,
    pub path: String,
}

impl Url {
    /// Parses `http(s)://host[:port][/path]` (no query, fragment or user info).
    pub fn parse(s: &str) -> Result<Url, String> {
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| format!("{s:?} is not an http:// or https:// URL"))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(format!("{s:?} is not an http:// or https:// URL"));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty()
            || authority.contains('@')
            || path.contains(['?', '#'])
            || s.chars().any(|c| c.is_control() || c == ' ')
        {
            return Err(format!(
                "{s:?} must be scheme://host[:port]/path, without user, query or fragment"
            ));
        }
        let mut path = path.to_string();
        if !path.ends_with('/') {
            path.push('/');
        }
        Ok(Url {
            scheme,
            authority: authority.to_ascii_lowercase(),
            path,
        })
    }

    pub fn origin(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }

    /// `origin + path + rel` (`rel` without a leading `/`).
    pub fn join(&self, rel: &str) -> String {
        format!("{}{}{rel}", self.origin(), self.path)
    }

    /// The host without its port.
    pub fn host(&self) -> &str {
        let a = self.authority.as_str();
        if let Some(rest) = a.strip_prefix('[') {
            return rest.split(']').next().unwrap_or(rest);
        }
        a.rsplit_once(':').map_or(a, |(h, _)| h)
    }

    pub fn is_loopback_host(&self) -> bool {
        matches!(self.host(), "localhost" | "127.0.0.1" | "::1")
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.origin(), self.path)
    }
}

/// What is wrong, naming the file and key, with what would fix it.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One key's value and the file it came from.
struct Found {
    value: toml::Value,
    file: PathBuf,
}

/// The keys of one section, merged over every file.
#[derive(Default)]
struct Section(Vec<(String, Found)>);

impl Section {
    fn set(&mut self, key: &str, value: toml::Value, file: &Path) {
        self.0.retain(|(k, _)| k != key);
        self.0.push((
            key.to_string(),
            Found {
                value,
                file: file.to_path_buf(),
            },
        ));
    }

    fn get(&self, key: &str) -> Option<&Found> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, f)| f)
    }
}

struct Sections {
    gate: Option<Section>,
    oidc: Section,
    daemon: Section,
}

/// Reads `path` and its drop-ins.
pub fn load(path: &Path) -> Result<GateConfig, ConfigError> {
    let mut files = vec![path.to_path_buf()];
    let conf_d = path.parent().unwrap_or(Path::new("/")).join("conf.d");
    if let Ok(entries) = fs::read_dir(&conf_d) {
        let mut more: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        more.sort();
        files.extend(more);
    }
    let mut texts = Vec::new();
    for file in files {
        let text = read_small(&file)?;
        texts.push((file, text));
    }
    from_texts(path, &texts)
}

/// As [`load`], from one text (tests).
pub fn from_text(path: &Path, text: &str) -> Result<GateConfig, ConfigError> {
    from_texts(path, &[(path.to_path_buf(), text.to_string())])
}

/// The configuration of the main file `path` from the texts of it and its drop-ins, in order.
fn from_texts(path: &Path, texts: &[(PathBuf, String)]) -> Result<GateConfig, ConfigError> {
    let mut s = Sections {
        gate: None,
        oidc: Section::default(),
        daemon: Section::default(),
    };
    for (file, text) in texts {
        merge(&mut s, file, text)?;
    }
    let gate = s.gate.ok_or_else(|| {
        ConfigError(format!(
            "{}: no [gate] section; add one with listen, public_url and rserver_url (see accountmap.toml(5), \"[gate]\")",
            path.display()
        ))
    })?;
    from_sections(path, &gate, &s.oidc, &s.daemon)
}

fn read_small(file: &Path) -> Result<String, ConfigError> {
    let shown = file.display();
    let meta = fs::metadata(file).map_err(|e| ConfigError(format!("cannot read {shown}: {e}")))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(ConfigError(format!(
            "{shown} is {} bytes; a configuration file may have at most {MAX_FILE_BYTES}",
            meta.len()
        )));
    }
    fs::read_to_string(file).map_err(|e| ConfigError(format!("cannot read {shown}: {e}")))
}

fn merge(s: &mut Sections, file: &Path, text: &str) -> Result<(), ConfigError> {
    // toml's messages name line and column; they quote the offending line of a config file,
    // which is the administrator's own and holds no secret (secrets live in their own files).
    let doc: toml::Table = toml::from_str(text)
        .map_err(|e| ConfigError(format!("{}: not valid TOML: {e}", file.display())))?;
    for (name, target) in [("gate", 0), ("oidc", 1), ("daemon", 2)] {
        let Some(value) = doc.get(name) else { continue };
        let Some(table) = value.as_table() else {
            return Err(ConfigError(format!(
                "{}: {name} must be a section ([{name}])",
                file.display()
            )));
        };
        let section = match target {
            0 => s.gate.get_or_insert_with(Section::default),
            1 => &mut s.oidc,
            _ => &mut s.daemon,
        };
        for (k, v) in table {
            section.set(k, v.clone(), file);
        }
    }
    Ok(())
}

/// Typed reading of one section's keys, each error naming the file and key.
struct Reader<'a> {
    section: &'a Section,
    name: &'a str,
}

impl Reader<'_> {
    fn err(&self, key: &str, what: impl fmt::Display) -> ConfigError {
        let file = self
            .section
            .get(key)
            .map_or_else(String::new, |f| format!("{}: ", f.file.display()));
        ConfigError(format!("{file}[{}] {key}: {what}", self.name))
    }

    fn string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.section.get(key).map(|f| &f.value) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => {
                Err(self.err(key, format!("must be a string, found {}", other.type_str())))
            }
        }
    }

    fn required(&self, key: &str, example: &str) -> Result<String, ConfigError> {
        self.string(key)?.ok_or_else(|| {
            ConfigError(format!(
                "[{}] has no {key}; add e.g. {key} = {example:?}",
                self.name
            ))
        })
    }

    fn bool(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.section.get(key).map(|f| &f.value) {
            None => Ok(default),
            Some(toml::Value::Boolean(b)) => Ok(*b),
            Some(other) => Err(self.err(
                key,
                format!("must be true or false, found {}", other.type_str()),
            )),
        }
    }

    fn words(&self, key: &str) -> Result<Option<Vec<String>>, ConfigError> {
        match self.section.get(key).map(|f| &f.value) {
            None => Ok(None),
            Some(toml::Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| self.err(key, "must be a list of strings"))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(self.err(
                key,
                format!("must be a list of strings, found {}", other.type_str()),
            )),
        }
    }

    fn seconds(&self, key: &str, default: u64) -> Result<u64, ConfigError> {
        match self.section.get(key).map(|f| &f.value) {
            None => Ok(default),
            Some(toml::Value::Integer(n)) if (1..=300).contains(n) => Ok(n.unsigned_abs()),
            Some(_) => Err(self.err(key, "must be a number of seconds from 1 to 300")),
        }
    }
}

fn from_sections(
    path: &Path,
    gate: &Section,
    oidc: &Section,
    daemon: &Section,
) -> Result<GateConfig, ConfigError> {
    let g = Reader {
        section: gate,
        name: "gate",
    };
    let o = Reader {
        section: oidc,
        name: "oidc",
    };
    let d = Reader {
        section: daemon,
        name: "daemon",
    };
    let listen_text = g
        .string("listen")?
        .unwrap_or_else(|| "127.0.0.1:8788".into());
    let listen: SocketAddr = listen_text.parse().map_err(|_| {
        g.err(
            "listen",
            format!("{listen_text:?} is not ADDRESS:PORT, e.g. \"127.0.0.1:8788\""),
        )
    })?;
    let public_url = Url::parse(&g.required("public_url", "https://rstudio.example.com/")?)
        .map_err(|e| g.err("public_url", e))?;
    if public_url.scheme != "https" && !public_url.is_loopback_host() {
        // The gate's cookies are Secure: over plain http a browser would drop them.
        return Err(g.err(
            "public_url",
            format!(
                "{public_url} is not https://; browsers reach RStudio through TLS (http:// only for localhost)"
            ),
        ));
    }
    let rserver_url = Url::parse(
        &g.string("rserver_url")?
            .unwrap_or_else(|| "http://127.0.0.1:8787/".into()),
    )
    .map_err(|e| g.err("rserver_url", e))?;
    let mode_text = g.string("mode")?.unwrap_or_else(|| "oidc".into());
    let mode = match mode_text.as_str() {
        "oidc" => Mode::Oidc {
            client_secret_file: g.string("client_secret_file")?.map(PathBuf::from),
        },
        "header" => {
            let header = g.required("user_header", "X-Auth-Request-User")?;
            let lower = header.to_ascii_lowercase();
            if lower == RSTUDIO_DEFAULT_HEADER {
                return Err(g.err(
                    "user_header",
                    "X-RStudio-Username is what anyone who reaches RStudio could send; name a header only your proxy sets (and strips from clients), e.g. X-Auth-Request-User",
                ));
            }
            if lower.is_empty()
                || !lower
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(g.err("user_header", format!("{header:?} is not a header name")));
            }
            Mode::Header {
                user_header: lower,
                require_signature: g.bool("require_signature", true)?,
            }
        }
        other => {
            return Err(g.err(
                "mode",
                format!("must be \"oidc\" or \"header\", found {other:?}"),
            ))
        }
    };
    let scopes = g
        .words("scopes")?
        .unwrap_or_else(|| vec!["openid".into(), "email".into()]);
    if !scopes.iter().any(|s| s == "openid") {
        return Err(g.err(
            "scopes",
            "must include \"openid\" (the ID token is what accountmapd checks)",
        ));
    }
    let rserver_encryption = match g.string("rserver_encryption")?.as_deref() {
        None | Some("auto") => None,
        Some("pkcs1") => Some(Scheme::Pkcs1v15),
        Some("oaep") => Some(Scheme::OaepSha256),
        Some(other) => {
            return Err(g.err(
                "rserver_encryption",
                format!("must be \"auto\" (by the key rserver publishes), \"pkcs1\" or \"oaep\", found {other:?}"),
            ))
        }
    };
    let client_id = match (&mode, o.string("client_id")?) {
        (_, Some(id)) => id,
        (Mode::Header { .. }, None) => String::new(),
        (Mode::Oidc { .. }, None) => {
            return Err(ConfigError(format!(
                "{}: [gate] mode = \"oidc\" needs [oidc] client_id (the OAuth client the gate signs users in with; accountmapd checks ID tokens against it)",
                path.display()
            )))
        }
    };
    Ok(GateConfig {
        listen,
        public_url,
        rserver_url,
        mode,
        scopes,
        service: g.string("service")?.unwrap_or_else(|| "rstudio".into()),
        rserver_encryption,
        stay_signed_in: g.bool("stay_signed_in", false)?,
        discovery_endpoint: o
            .string("discovery_endpoint")?
            .unwrap_or_else(|| GOOGLE_DISCOVERY.into()),
        client_id,
        ca_file: o.string("ca_file")?.map(PathBuf::from),
        socket: d.string("socket")?.map_or_else(
            || PathBuf::from(accountmap_wire::DEFAULT_SOCKET),
            PathBuf::from,
        ),
        timeout: Duration::from_secs(g.seconds("timeout", 10)?),
    })
}

#[cfg(test)]
mod tests;
