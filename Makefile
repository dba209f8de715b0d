# The test command is `make test`; .ci/run calls it on a clean clone.
.PHONY: test peers lint unit demo bench

test: peers lint unit

peers:
	scripts/install-peers.sh

lint:
	cargo fmt --check
	cargo clippy --all-targets --locked -- -D warnings

unit:
	cargo test --all-targets --locked

# The embedded demo (sets up ONNX Runtime in .venv-peers if missing); ARGS go to `inferwatch demo`.
demo:
	scripts/demo.sh $(ARGS)

bench:
	scripts/install-peers.sh --bench
	cargo bench --bench accounting --bench encode --bench spc
	bench/proxy.sh
