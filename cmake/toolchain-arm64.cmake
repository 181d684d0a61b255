# 64-bit ARM cameras (ARMv8-A: Debian arm64, aarch64-linux-gnu). Needs
# deploy/install-cross-deps.sh (g++-aarch64-linux-gnu, libssl-dev:arm64).
#   cmake -S . -B build-arm64 -G Ninja --toolchain cmake/toolchain-arm64.cmake \
#         -DCMAKE_BUILD_TYPE=Release -DCAMTUNNEL_AGENT_ONLY=ON
set(CAMTUNNEL_CROSS_TRIPLET aarch64-linux-gnu)
set(CAMTUNNEL_CROSS_PROCESSOR aarch64)
set(CAMTUNNEL_CROSS_QEMU qemu-aarch64)
include(${CMAKE_CURRENT_LIST_DIR}/toolchain-camera-common.cmake)
