//! A real nginx (Debian's package, `/usr/sbin/nginx`) in front of the browser tests' servers.
//!
//! [`Nginx::start`] writes a complete `nginx.conf` into the test's directory around a site (the
//! text an administrator would put in `/etc/nginx/sites-enabled/`, so it sits in the `http`
//! context and may hold `map` blocks as well as `server` blocks), runs nginx in the
//! foreground with everything it writes (pid, logs, temporary files) inside that directory,
//! waits until it listens on every `listen` port of the site and kills its process group when
//! dropped. [`rstudio_site`] is the site of the RStudio + gate end-to-end test, and the README's
//! nginx snippet.

use crate::server::remove_unless_kept;
use crate::wait::wait_until;
use crate::{files::write_atomic, is_root};
use std::fs;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const NGINX: &str = "/usr/sbin/nginx";
/// How long nginx may take to listen.
pub const NGINX_START_LIMIT: Duration = Duration::from_secs(10);

/// A running nginx; killed (its master and workers) when dropped.
pub struct Nginx {
    /// The directory nginx runs in (`-p`): `nginx.conf`, `error.log`, `access.log`, temp dirs.
    pub dir: PathBuf,
    /// The ports of the site's `listen` directives.
    pub ports: Vec<u16>,
    child: Option<Child>,
}

impl Nginx {
    /// Whether Debian's nginx is installed (scripts/install-deps.sh installs it).
    pub fn available() -> bool {
        Path::new(NGINX).exists()
    }

    /// Starts nginx in `dir/nginx` with `site` (http-context text: `map`s and `server`s whose
    /// `listen` directives name loopback ports) and waits until every port listens.
    pub fn start(dir: &Path, site: &str) -> Nginx {
        let dir = dir.join("nginx");
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create the nginx directory");
        let ports = listen_ports(site);
        assert!(
            !ports.is_empty(),
            "no `listen HOST:PORT;` in the site:\n{site}"
        );
        let conf = dir.join("nginx.conf");
        write_atomic(&conf, &nginx_conf(&dir, site));
        let mut cmd = Command::new(NGINX);
        cmd.arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(&dir)
            // -e (nginx 1.19.5+): otherwise nginx opens the compiled-in
            // /var/log/nginx/error.log before it has read the configuration.
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: the master and its workers are killed together.
            .process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {NGINX}: {e}"));
        let mut n = Nginx {
            dir,
            ports,
            child: Some(child),
        };
        let mut exited = None;
        let up = wait_until(NGINX_START_LIMIT, || {
            if let Some(Ok(Some(status))) = n.child.as_mut().map(|c| c.try_wait()) {
                exited = Some(status);
                return true;
            }
            n.ports
                .iter()
                .all(|p| TcpStream::connect(("127.0.0.1", *p)).is_ok())
        });
        if let Some(status) = exited {
            n.child = None;
            panic!("nginx exited ({status}) at start\n{}", n.logs());
        }
        if !up {
            panic!(
                "nginx not listening on {:?} within {NGINX_START_LIMIT:?}\n{}",
                n.ports,
                n.logs()
            );
        }
        n
    }

    pub fn error_log(&self) -> String {
        fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    pub fn access_log(&self) -> String {
        fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
    }

    /// Both logs, labelled, for failure messages.
    pub fn logs(&self) -> String {
        format!(
            "--- nginx error.log ---\n{}--- nginx access.log ---\n{}",
            self.error_log(),
            self.access_log()
        )
    }

    /// Kills the master and its workers (the whole process group) and reaps the master.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pgid = child.id() as libc::pid_t;
            // SAFETY: kill(2) with a negative pid signals the process group we created at
            // spawn (process_group(0) made the master its leader); no memory is involved.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
            let _ = child.wait();
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
        remove_unless_kept(&self.dir);
    }
}

/// The ports of every `listen ADDR:PORT;` (or `listen PORT;`) line of `site`.
fn listen_ports(site: &str) -> Vec<u16> {
    site.lines()
        .filter_map(|l| l.trim().strip_prefix("listen "))
        .filter_map(|rest| {
            let addr = rest.split([' ', ';']).next()?;
            addr.rsplit(':').next()?.parse().ok()
        })
        .collect()
}

/// A whole nginx.conf around `site`: nothing outside `dir` is read or written (no
/// /etc/nginx/mime.types, no /var/lib/nginx temp dirs, no /run/nginx.pid).
fn nginx_conf(dir: &Path, site: &str) -> String {
    let d = dir.display();
    // As root the workers would switch to the compiled-in user (nobody), which may not reach
    // the test's private temp directory; the site, not this frame, is what the tests exercise.
    let user = if is_root() { "user root root;\n" } else { "" };
    format!(
        "# Written by the accountmap tests (tests/src/nginx.rs).\n\
         daemon off;\n\
         master_process on;\n\
         worker_processes 1;\n\
         {user}\
         pid {d}/nginx.pid;\n\
         error_log {d}/error.log info;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n\
         \x20   access_log {d}/access.log;\n\
         \x20   client_body_temp_path {d}/client_body;\n\
         \x20   proxy_temp_path {d}/proxy;\n\
         \x20   fastcgi_temp_path {d}/fastcgi;\n\
         \x20   uwsgi_temp_path {d}/uwsgi;\n\
         \x20   scgi_temp_path {d}/scgi;\n\
         \x20   default_type application/octet-stream;\n\
         \x20   server_tokens off;\n\
         {site}\n\
         }}\n"
    )
}

/// The site of the RStudio sign-in end-to-end test, and the nginx snippet of the README:
/// nginx on `127.0.0.1:port` in front of accountmap-gate (`gate_port`) and rserver
/// (`rserver_port`). RStudio's admin guide ("Running with a Proxy") proxies `/` to rserver
/// with websockets upgraded; the gate adds a path prefix and takes over RStudio's sign-in page.
pub fn rstudio_site(port: u16, gate_port: u16, rserver_port: u16) -> String {
    format!(
        r#"# accountmap-gate in front of RStudio Server (open source).
# As in RStudio's admin guide: websocket upgrades are passed on (Shiny apps and the IDE's
# channels need them); this map belongs in the http context.
map $http_upgrade $connection_upgrade {{
    default upgrade;
    ''      close;
}}

server {{
    listen 127.0.0.1:{port};
    server_name localhost;

    # The gate, under its path prefix (kept: no trailing slash on proxy_pass). Its own URLs
    # come from [gate] public_url; the client's address goes on for accountmapd's brake.
    location /gate/ {{
        proxy_pass http://127.0.0.1:{gate_port};
        proxy_set_header Host $host:$server_port;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
    }}

    # RStudio's own sign-in page is replaced by the gate: a user who is not signed in is sent
    # here by rserver with ?appUri=..., which the gate receives as its query.
    location = /auth-sign-in {{
        return 302 /gate/login$is_args$args;
    }}

    # Everything else is RStudio, as in RStudio's admin guide.
    location / {{
        proxy_pass http://127.0.0.1:{rserver_port};
        proxy_redirect http://127.0.0.1:{rserver_port}/ $scheme://$host:$server_port/;
        proxy_set_header Host $host:$server_port;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        # RStudio long-polls: a short read timeout turns its idle requests into 504s.
        proxy_read_timeout 20d;
    }}
}}
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_ports_of_the_rstudio_site() {
        assert_eq!(listen_ports(&rstudio_site(8080, 1, 2)), vec![8080]);
        assert_eq!(
            listen_ports("listen 81;\n  listen [::1]:82 ssl;"),
            vec![81, 82]
        );
    }
}
