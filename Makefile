# Thin wrapper over the CMake presets. `make demo` and `make test` are the two commands a
# newcomer needs (see README.md).
JOBS ?= $(shell nproc)

.PHONY: deps build asan tsan demo test test-release test-asan test-tsan fuzz clean format lint \
  lint-full

deps:
	bash deploy/install-deps.sh

build: deps
	cmake --preset release >/dev/null
	cmake --build --preset release -j $(JOBS)

asan: deps
	cmake --preset asan >/dev/null
	cmake --build --preset asan -j $(JOBS)

# ThreadSanitizer build of the cross-shard tests: shards handing connections to each other, in the
# runtime and in the gateway.
tsan: deps
	cmake --preset tsan >/dev/null
	cmake --build --preset tsan -j $(JOBS)

test-tsan: tsan
	ctest --preset tsan -j $(JOBS)

# Gateway with a generated dev certificate and streamer key, a demo camera and a demo agent;
# prints an rtsp:// URL for ffprobe and runs until Ctrl-C.
demo: build
	bash deploy/demo.sh build/release

# The whole suite: Release build (unit + end-to-end), the sanitizer build of the tests, and the
# ThreadSanitizer build of the cross-shard tests.
test: build asan tsan
	ctest --preset release -j $(JOBS)
	ctest --preset asan -j $(JOBS) -L 'unit|sanitize'
	ctest --preset tsan -j $(JOBS)

fuzz:
	cmake --preset fuzz >/dev/null
	cmake --build --preset fuzz -j $(JOBS)

format:
	find proto runtime http gateway agent manager agentsim metrics tests fuzz bench \
	  -name '*.cc' -o -name '*.h' | xargs clang-format -i

# clang-format check of every C++ file, then clang-tidy on the .cc files changed since the merge
# base with main (the last commit's on main itself); how the files are chosen: .ci/lint. CI runs
# it after `make test`. lint-full: clang-tidy on every .cc (most of an hour on two cores).
lint:
	JOBS=$(JOBS) bash .ci/lint

lint-full:
	JOBS=$(JOBS) bash .ci/lint --full

clean:
	rm -rf build

# ---------------------------------------------------------------------------------------------
# Camera builds of the agent (docs/agent-footprint.md). Debian cross compilers + multiarch
# OpenSSL (deploy/install-cross-deps.sh), CMake toolchain files in cmake/, agent only, Release
# with the size profile of cmake/toolchain-camera-common.cmake. build-<arch>/agent/ keeps the
# binary with symbols (for size / nm); build-<arch>/camtunnel-agent is the stripped copy that
# goes on a camera. Not part of `make test`.
.PHONY: cross-deps agent-armhf agent-arm64 test-cross clean-cross

CROSS_TRIPLET_armhf := arm-linux-gnueabihf
CROSS_TRIPLET_arm64 := aarch64-linux-gnu

cross-deps:
	bash deploy/install-cross-deps.sh

agent-armhf agent-arm64: agent-%:
	bash deploy/install-cross-deps.sh $*
	cmake -S . -B build-$* -G Ninja --toolchain cmake/toolchain-$*.cmake \
	  -DCMAKE_BUILD_TYPE=Release -DCAMTUNNEL_AGENT_ONLY=ON >/dev/null
	cmake --build build-$* -j $(JOBS)
	$(CROSS_TRIPLET_$*)-strip --strip-all -o build-$*/camtunnel-agent build-$*/agent/camtunnel-agent
	@echo "build-$*/camtunnel-agent: $$(stat -c %s build-$*/camtunnel-agent) bytes stripped"

# The armhf agent under qemu-user against the native gateway of `make build`, streaming RTSP
# (tests/cross/test_armhf_agent.py; CAMTUNNEL_CROSS_REQUIRED=1 makes a missing piece fail
# instead of skip). agent-armhf runs after build, never beside it under make -j: both may call apt.
test-cross: build
	$(MAKE) --no-print-directory agent-armhf
	CAMTUNNEL_CROSS_REQUIRED=1 /usr/bin/python3 tests/cross/test_armhf_agent.py -v

clean-cross:
	rm -rf build-armhf build-arm64
