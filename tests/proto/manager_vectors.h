// The sections of proto/manager_test_vectors.json (computed by tests/proto/manager_vectors.py
// from PROTOCOL.md section 10), for the tests that check the C++ proto/ code against them.
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

namespace camtunnel::proto::test_util {

// A missing or empty section fails the calling test and reads as an empty array.
inline const nlohmann::json& ManagerVectorSection(const char* name) {
  static const nlohmann::json vectors = [] {
    std::ifstream in(CAMTUNNEL_SOURCE_DIR "/proto/manager_test_vectors.json");
    return nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  }();
  static const nlohmann::json kEmpty = nlohmann::json::array();
  if (vectors.is_discarded() || !vectors.contains(name) || !vectors[name].is_array() ||
      vectors[name].empty()) {
    ADD_FAILURE() << "proto/manager_test_vectors.json: missing or empty section " << name;
    return kEmpty;
  }
  return vectors[name];
}

}  // namespace camtunnel::proto::test_util
