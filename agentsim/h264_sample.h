// A tiny valid H.264 stream the simulated cameras send: a 16x16 Constrained Baseline IDR frame
// and 16 P frames whose frame_num runs 1..15, 0, so cycling the P frames forever (with the IDR
// every GOP) is a conforming stream that decoders (ffprobe) play without a single error. The
// bytes are data, encoded once with x264 (see h264_sample.cc) and embedded, so the simulator needs
// no encoder at run time and every frame costs nothing to produce.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace camtunnel::agentsim {

inline constexpr size_t kSamplePFrames = 16;
inline constexpr int kSampleWidth = 16;
inline constexpr int kSampleHeight = 16;

// NAL units without start codes (first byte is the NAL header).
std::span<const uint8_t> SampleSps();
std::span<const uint8_t> SamplePps();
std::span<const uint8_t> SampleIdr();
// P frame `i % kSamplePFrames`; P frame 0 follows the IDR.
std::span<const uint8_t> SampleP(size_t i);

// SDP fmtp values (RFC 6184): "profile-level-id=42c00a;sprop-parameter-sets=<sps>,<pps>".
std::string SampleFmtp();

}  // namespace camtunnel::agentsim
