# 32-bit ARM cameras (ARMv7-A, hard float: Debian armhf, arm-linux-gnueabihf). Needs
# deploy/install-cross-deps.sh (g++-arm-linux-gnueabihf, libssl-dev:armhf, qemu-user).
#   cmake -S . -B build-armhf -G Ninja --toolchain cmake/toolchain-armhf.cmake \
#         -DCMAKE_BUILD_TYPE=Release -DCAMTUNNEL_AGENT_ONLY=ON
# Debian's armhf baseline is ARMv7-A + VFPv3-D16 + Thumb-2 (the compiler's default; Thumb-2 is
# also the smaller encoding). Do not pass -march here: the same binary must run on every armhf
# camera Debian's libssl3:armhf runs on.
set(CAMTUNNEL_CROSS_TRIPLET arm-linux-gnueabihf)
set(CAMTUNNEL_CROSS_PROCESSOR arm)
set(CAMTUNNEL_CROSS_QEMU qemu-arm)
include(${CMAKE_CURRENT_LIST_DIR}/toolchain-camera-common.cmake)
