# Shared part of cmake/toolchain-armhf.cmake and cmake/toolchain-arm64.cmake: Debian's cross
# compilers with multiarch libraries (libssl-dev:armhf / libssl-dev:arm64 under
# /usr/lib/<triplet>, headers under /usr/include + /usr/include/<triplet>), and the size profile
# of a camera build of the agent. The including file sets CAMTUNNEL_CROSS_TRIPLET,
# CAMTUNNEL_CROSS_PROCESSOR and CAMTUNNEL_CROSS_QEMU first.
#
# Used by `make agent-armhf` / `make agent-arm64` (with -DCAMTUNNEL_AGENT_ONLY=ON, Release):
#   cmake -S . -B build-armhf -G Ninja --toolchain cmake/toolchain-armhf.cmake \
#         -DCMAKE_BUILD_TYPE=Release -DCAMTUNNEL_AGENT_ONLY=ON

set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR ${CAMTUNNEL_CROSS_PROCESSOR})
set(CMAKE_C_COMPILER ${CAMTUNNEL_CROSS_TRIPLET}-gcc)
set(CMAKE_CXX_COMPILER ${CAMTUNNEL_CROSS_TRIPLET}-g++)
set(CMAKE_LIBRARY_ARCHITECTURE ${CAMTUNNEL_CROSS_TRIPLET})

# Multiarch, not a sysroot: the target's libraries live in the host's /usr/lib/<triplet>. Search
# only the target's library directory for libraries (never the build machine's
# /usr/lib/x86_64-linux-gnu), and run host programs from the host.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_LIBRARY_PATH /usr/lib/${CAMTUNNEL_CROSS_TRIPLET} /lib/${CAMTUNNEL_CROSS_TRIPLET})
# FindOpenSSL takes hints from pkg-config: point it at the target's .pc files, not the host's.
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/${CAMTUNNEL_CROSS_TRIPLET}/pkgconfig:/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")

# try_run and add_test(... COMMAND target) of cross-built programs run under qemu-user.
if(CAMTUNNEL_CROSS_QEMU)
  find_program(CAMTUNNEL_QEMU_PROGRAM ${CAMTUNNEL_CROSS_QEMU})
  if(CAMTUNNEL_QEMU_PROGRAM)
    set(CMAKE_CROSSCOMPILING_EMULATOR ${CAMTUNNEL_QEMU_PROGRAM} -L /usr/${CAMTUNNEL_CROSS_TRIPLET})
  endif()
endif()

# Size profile (camera flash and RAM are small). Release becomes -Os; every function and object
# gets its own section so the linker can drop what nothing references; --as-needed keeps
# DT_NEEDED to what is used; the build keeps its symbols (for nm --size-sort / size) and
# `make agent-<arch>` writes a stripped copy beside the build directory's agent/.
# (CMake appends its own "-O3 -DNDEBUG" to *_FLAGS_RELEASE_INIT, and the last -O wins, so the
# Release flags are set as cache entries, which CMake then leaves alone.)
set(CMAKE_C_FLAGS_RELEASE "-Os -DNDEBUG" CACHE STRING "Release flags (camera size profile)")
set(CMAKE_CXX_FLAGS_RELEASE "-Os -DNDEBUG" CACHE STRING "Release flags (camera size profile)")
set(CMAKE_C_FLAGS_INIT "-ffunction-sections -fdata-sections")
set(CMAKE_CXX_FLAGS_INIT "-ffunction-sections -fdata-sections")
set(CMAKE_EXE_LINKER_FLAGS_INIT "-Wl,--gc-sections -Wl,--as-needed -Wl,-O1 -Wl,-z,relro -Wl,-z,now")
# Link-time optimisation: inlines and drops across translation units (armhf: 83,528 -> 71,240
# bytes stripped). -DCMAKE_INTERPROCEDURAL_OPTIMIZATION=OFF turns it off.
set(CMAKE_INTERPROCEDURAL_OPTIMIZATION ON CACHE BOOL "LTO for the camera build")
# Cameras whose firmware has no libstdc++.so.6 (1.4 MB on armhf): link libstdc++ and libgcc
# statically; only what the agent uses is pulled in (armhf: 71,240 -> 120,400 bytes). Like every
# *_INIT flag this takes effect when a build directory is first configured.
option(CAMTUNNEL_STATIC_LIBSTDCXX "Link libstdc++/libgcc statically (camera without libstdc++)" OFF)
if(CAMTUNNEL_STATIC_LIBSTDCXX)
  string(APPEND CMAKE_EXE_LINKER_FLAGS_INIT " -static-libstdc++ -static-libgcc")
endif()
