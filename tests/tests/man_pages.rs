//! The man pages in docs/man/ (shipped in both packages) against the binaries' own `--help`:
//! every subcommand and every long option that clap knows must appear in the page, so that a
//! flag added to accountmapd or accountmapctl cannot ship undocumented. Also: each page starts
//! with a `.TH` naming itself and its section, and `man` renders it without a warning.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use accountmap_tests::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const PAGES: [(&str, &str); 6] = [
    ("accountmapd", "8"),
    ("accountmap-gate", "8"),
    ("accountmapctl", "1"),
    ("pam_accountmap", "8"),
    ("nss_accountmap", "8"),
    ("accountmap.toml", "5"),
];

fn page_path(name: &str, section: &str) -> PathBuf {
    workspace_root()
        .join("docs/man")
        .join(format!("{name}.{section}"))
}

/// The page's text with roff's `\-` turned back into `-`.
fn page_text(name: &str, section: &str) -> String {
    let path = page_path(name, section);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .replace("\\-", "-")
}

fn help(program: &Path, args: &[&str]) -> String {
    let out = run_bounded(
        Command::new(program).args(args).arg("--help"),
        None,
        Duration::from_secs(20),
    );
    assert_eq!(
        out.code,
        0,
        "{} {args:?} --help\n{}",
        program.display(),
        out.all()
    );
    out.stdout
}

/// The long options (`--name`) a clap help text lists.
fn long_options(help: &str) -> BTreeSet<String> {
    help.lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('-'))
        .flat_map(|l| l.split([' ', ',', '=', '<']).map(str::to_string))
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .collect()
}

/// The subcommands a clap help text lists (without clap's own `help`).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| l.trim() != "Commands:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect()
}

fn assert_documented(page: &str, page_name: &str, what: &str, word: &str) {
    assert!(
        page.contains(word),
        "{what} {word} is not documented in docs/man/{page_name}: add it to the man page"
    );
}

#[test]
fn accountmapd_options_are_in_its_man_page() {
    let page = page_text("accountmapd", "8");
    for option in long_options(&help(&accountmapd(), &[])) {
        assert_documented(&page, "accountmapd.8", "accountmapd option", &option);
    }
}

#[test]
fn accountmap_gate_options_are_in_its_man_page() {
    let page = page_text("accountmap-gate", "8");
    for option in long_options(&help(&accountmap_gate(), &[])) {
        assert_documented(
            &page,
            "accountmap-gate.8",
            "accountmap-gate option",
            &option,
        );
    }
}

#[test]
fn accountmapctl_commands_and_options_are_in_its_man_page() {
    let page = page_text("accountmapctl", "1");
    let ctl = accountmapctl();
    let top = help(&ctl, &[]);
    let mut options = long_options(&top);
    let commands = subcommands(&top);
    assert!(commands.len() >= 4, "no commands parsed from\n{top}");
    for command in &commands {
        assert_documented(&page, "accountmapctl.1", "accountmapctl command", command);
        let sub = help(&ctl, &[command]);
        options.extend(long_options(&sub));
        for nested in subcommands(&sub) {
            assert_documented(
                &page,
                "accountmapctl.1",
                "accountmapctl command",
                &format!("{command} {nested}"),
            );
            options.extend(long_options(&help(&ctl, &[command, &nested])));
        }
    }
    for option in options {
        assert_documented(&page, "accountmapctl.1", "accountmapctl option", &option);
    }
}

#[test]
fn every_page_has_its_title_and_renders_cleanly() {
    for (name, section) in PAGES {
        let text = page_text(name, section);
        let th = text
            .lines()
            .find(|l| l.starts_with(".TH "))
            .unwrap_or_else(|| panic!("{name}.{section}: no .TH line"));
        let mut words = th.split_whitespace().skip(1);
        assert_eq!(
            words.next().map(str::to_lowercase),
            Some(name.to_lowercase()),
            "{th}"
        );
        assert_eq!(words.next(), Some(section), "{th}");
    }
    if !Path::new("/usr/bin/man").exists() {
        eprintln!("man_pages: man is not installed; rendering not checked");
        return;
    }
    // 80 columns, and 120 as lintian renders them (its groff-message check).
    for (name, section) in PAGES {
        for width in ["80", "120"] {
            let out = run_bounded(
                Command::new("man")
                    .args(["--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z"])
                    .arg(page_path(name, section))
                    .env("MANWIDTH", width)
                    .env("MANROFFSEQ", "")
                    .env("LC_ALL", "C.UTF-8"),
                None,
                Duration::from_secs(20),
            );
            assert_eq!(out.code, 0, "man {name}.{section}\n{}", out.all());
            assert!(
                out.stderr.trim().is_empty(),
                "man {name}.{section} at {width} columns warns\n{}",
                out.stderr
            );
        }
    }
}
