# accountmap: build, lint, test and demo.
#   make test   install missing prerequisites, then fmt check, clippy, build, all tests
#   make demo   install missing prerequisites, build, then sign a few made-up users in
#   make bench-policy   the policy benchmark against pam_succeed_if.so (release build)
#   make bench-ldap     LDAP password sign-ins against a local slapd, and raw ldap3 costs (release build)
#   make package   the .deb and .rpm in target/packages/ (or $CARGO_TARGET_DIR/packages/),
#                  then check both (file lists, conffiles, scripts, lintian, rpm -qpi)
#   make build | release | lint | clean

CARGO ?= cargo

.PHONY: all build release lint test demo deps clean bench-policy bench-ldap package

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

# Same policy through pam_succeed_if.so and pam_accountmap.so, full PAM transactions, 1 and 8
# clients; builds release binaries itself. Figures: README, "Performance".
bench-policy:
	scripts/install-deps.sh
	bench/run.sh

# The daemon under test is the release build; the benchmark itself is an ignored test.
bench-ldap:
	scripts/install-deps.sh
	$(CARGO) build --release --workspace
	ACCOUNTMAP_ARTIFACT_DIR=$${CARGO_TARGET_DIR:-target}/release \
	  $(CARGO) test --release -p accountmap-tests --test bench_ldap -- --ignored --nocapture

clean:
	$(CARGO) clean
