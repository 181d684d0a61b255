# Thin wrapper over the CMake presets. `make demo` and `make test` are the two commands a
# newcomer needs (see README.md).
JOBS ?= $(shell nproc)

.PHONY: deps build asan demo test test-release test-asan fuzz clean format

deps:
	bash deploy/install-deps.sh

build: deps
	cmake --preset release >/dev/null
	cmake --build --preset release -j $(JOBS)

asan: deps
	cmake --preset asan >/dev/null
	cmake --build --preset asan -j $(JOBS)

# Gateway with a generated dev certificate and streamer key, a demo camera and a demo agent;
# prints an rtsp:// URL for ffprobe and runs until Ctrl-C.
demo: build
	bash deploy/demo.sh build/release

# The whole suite: Release build (unit + end-to-end), then the sanitizer build of the tests.
test: build asan
	ctest --preset release -j $(JOBS)
	ctest --preset asan -j $(JOBS) -L 'unit|sanitize'

fuzz:
	cmake --preset fuzz >/dev/null
	cmake --build --preset fuzz -j $(JOBS)

format:
	find proto runtime gateway agent metrics tests fuzz bench -name '*.cc' -o -name '*.h' | xargs clang-format -i

clean:
	rm -rf build
