#pragma once
// Text prompts for shapes-world scenes from a small grammar with paraphrases.
//
// Every paraphrase names every attribute of every object (size, colour, shape, motion) and the
// background, so a prompt determines the scene's attributes exactly (not its layout):
//   0 "a small red circle moves to the left on a white background"
//   1 "a little red circle slides left over a white backdrop"
//   ...
// Pure functions; thread-safe.

#include <string>
#include <vector>

#include "core/data/scene.h"

namespace linvideo::core::data {

inline constexpr int kNumParaphrases = 6;

// The prompt for `spec` in paraphrase `paraphrase` (taken modulo kNumParaphrases).
std::string Prompt(const SceneSpec& spec, int paraphrase = 0);

// Every word the grammar can produce, sorted and unique (e.g. for a tokenizer vocabulary).
std::vector<std::string> PromptVocabulary();

}  // namespace linvideo::core::data
