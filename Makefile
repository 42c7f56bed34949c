# accountmap: build, lint, test and demo.
#   make test   install missing prerequisites, then fmt check, clippy, build, all tests
#   make demo   install missing prerequisites, build, then sign a few made-up users in
#   make bench-policy   the policy benchmark against pam_succeed_if.so (release build)
#   make bench-nss      getpwnam(alias) through the NSS module: shared-memory cache vs socket (release build)
#   make bench-ldap     LDAP password sign-ins against a local slapd, and raw ldap3 costs (release build)
#   make bench          accountmap vs SSSD, nslcd and pam_succeed_if against one slapd on loopback,
#                       1,000 and 50,000 users (root; installs its Debian packages, restores every
#                       file it touches; ~20 min) -> docs/benchmarks.md, docs/benchmarks.png
#   make load           >= 20,000 PAM transactions, 32 concurrent clients, every verdict checked,
#                       daemon RSS sampled (release build; ~1 min). Figures: README, "Load"
#   make fuzz           each fuzz target for FUZZ_SECONDS (default 60) seconds
#   make valgrind       the PAM and NSS modules under memcheck (pamtester, getent)
#   make package   the .deb and .rpm in target/packages/ (or $CARGO_TARGET_DIR/packages/),
#                  then check both (file lists, conffiles, scripts, lintian, rpm -qpi)
#   make build | release | lint | clean

CARGO ?= cargo

.PHONY: all build release lint test demo deps clean bench bench-policy bench-nss bench-ldap package load fuzz valgrind

all: build

deps:
	scripts/install-deps.sh

build:
	$(CARGO) build --workspace

release:
	$(CARGO) build --release --workspace

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Sequential on purpose: the end-to-end tests need the binaries `cargo build` makes
# (target/debug/accountmapd, accountmapctl, libpam_accountmap.so).
test:
	scripts/install-deps.sh
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	bash -n bench/compare.sh && bash -n bench/run.sh
	$(CARGO) build --workspace
	$(CARGO) test --workspace

package:
	scripts/install-deps.sh
	scripts/build-packages.sh
	scripts/check-packages.sh

demo:
	scripts/install-deps.sh
	$(CARGO) build --workspace
	scripts/demo.sh

# The comparison with SSSD and nslcd (issue 8): bench/compare.sh installs what it needs, starts
# its own slapd/sssd/nslcd/accountmapd, restores every file it touched (checksummed) and writes
# docs/benchmarks.md and docs/benchmarks.png. Knobs: BENCH_USERS=1000,50000, BENCH_KEEP=1, ...
# (bench/README.md). Not part of `make test`.
# install-deps first: the build needs libpam0g-dev, and slapd/nss_wrapper come installed and
# configured the usual way before compare.sh takes its snapshot of the files it restores.
bench:
	scripts/install-deps.sh
	bench/compare.sh

# Same policy through pam_succeed_if.so and pam_accountmap.so, full PAM transactions, 1 and 8
# clients; builds release binaries itself. Figures: README, "Performance".
bench-policy:
	scripts/install-deps.sh
	bench/run.sh

# Load: the accountmap stack alone, 32 clients, 200,000 transactions. The warm-up runs with one
# client, which fills the daemon's account cache one lookup at a time: nss_wrapper's getgrouplist
# is not thread-safe (glibc's is), and cold concurrent lookups under it see wrong groups.
LOAD_TRANSACTIONS ?= 200000
load:
	scripts/install-deps.sh
	bench/run.sh --stacks accountmap --threads 32 --transactions $(LOAD_TRANSACTIONS) --rounds 1 \
	  --warmup 600 --warmup-threads 1 --max-seconds 600

# Fuzzing: cargo-fuzz (libFuzzer) on the nightly toolchain, each target FUZZ_SECONDS seconds.
# Installs cargo-fuzz with cargo when it is missing. A crash stops the run and leaves its input
# in fuzz/artifacts/TARGET/; turn it into a unit test beside the code, then fix.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= wire_request frame_reader config rewrite accounts_file oidc_token
fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd fuzz && for t in $(FUZZ_TARGETS); do \
	  echo "== fuzz $$t for $(FUZZ_SECONDS) s"; \
	  $(CARGO) +nightly fuzz run $$t -- -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 \
	    || exit 1; \
	done

valgrind:
	scripts/install-deps.sh
	$(CARGO) build --workspace
	scripts/valgrind.sh

# The daemon under test is the release build; the benchmark is bench/src/ldap_bench.rs.
bench-ldap:
	scripts/install-deps.sh
	$(CARGO) build --release --workspace
	ACCOUNTMAP_ARTIFACT_DIR=$${CARGO_TARGET_DIR:-target}/release \
	  $(CARGO) run --release -q -p accountmap-bench --bin ldap-bench

# N getpwnam_r calls of an alias in one process, through glibc's NSS (private mount namespace
# with its own nsswitch.conf, root only) and through nss_wrapper: from the shared-memory cache
# and over the socket (bench/src/nss_cache_bench.rs). Figures: README, "Performance".
bench-nss:
	scripts/install-deps.sh
	$(CARGO) build --release --workspace
	ACCOUNTMAP_ARTIFACT_DIR=$${CARGO_TARGET_DIR:-target}/release \
	  $(CARGO) run --release -q -p accountmap-bench --bin nss-cache-bench

clean:
	$(CARGO) clean
