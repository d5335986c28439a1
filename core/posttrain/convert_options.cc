// The conversion's options and the small parts of its loop that need no model: parsing and
// naming of --select / --objective / --adm-weighting, validation of ConvertOptions, the learning
// rate schedule and the divergence guard (declared in convert.h; the run itself is convert.cc).

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/common/status.h"
#include "core/posttrain/convert.h"
#include "core/posttrain/selective_transfer.h"

namespace linvideo::core::posttrain {
namespace {

absl::Status Bad(const std::string& text) { return absl::InvalidArgumentError(text); }

}  // namespace

bool DivergenceGuard::Add(double gap) {
  if (!std::isfinite(gap)) return true;
  recent_.push_back(gap);
  if (static_cast<int>(recent_.size()) > window_) recent_.erase(recent_.begin());
  if (static_cast<int>(recent_.size()) < window_) return false;
  double sum = 0;
  for (double v : recent_) sum += v;
  last_ = sum / window_;
  means_.push_back(last_);
  if (static_cast<int>(means_.size()) > 2 * window_) means_.erase(means_.begin());
  best_ = *std::min_element(means_.begin(), means_.end());
  return factor_ > 0 && last_ > factor_ * best_;
}

void DivergenceGuard::RestartWindow() { recent_.clear(); }

absl::StatusOr<LayerChoice> ParseLayerChoice(const std::string& text) {
  LayerChoice choice;
  if (text == "auto") return choice;
  if (text == "heuristic") {
    choice.mode = SelectMode::kHeuristic;
    return choice;
  }
  const std::string kPrefix = "layers:";
  if (text.rfind(kPrefix, 0) == 0) {
    choice.mode = SelectMode::kLayers;
    for (absl::string_view part :
         absl::StrSplit(text.substr(kPrefix.size()), ',', absl::SkipEmpty())) {
      int64_t l = -1;
      if (!absl::SimpleAtoi(part, &l)) {
        return Bad(absl::StrCat("--select ", text, ": '", part, "' is not a layer index"));
      }
      choice.layers.push_back(l);
    }
    if (!choice.layers.empty()) return choice;
  }
  return Bad(absl::StrCat("--select '", text,
                          "' is not allowed; use auto, heuristic or layers:I,J,... (0-based)"));
}

std::string LayerChoiceName(const LayerChoice& c) {
  switch (c.mode) {
    case SelectMode::kAuto:
      return "auto";
    case SelectMode::kHeuristic:
      return "heuristic";
    case SelectMode::kLayers:
      return absl::StrCat("layers:", absl::StrJoin(c.layers, ","));
  }
  return "auto";
}

absl::StatusOr<Objective> ParseObjective(const std::string& text) {
  if (text == "adm") return Objective::kAdm;
  if (text == "mse") return Objective::kMse;
  return Bad(absl::StrCat("--objective '", text, "' is not allowed; use adm or mse"));
}

const char* ObjectiveName(Objective objective) {
  return objective == Objective::kAdm ? "adm" : "mse";
}

absl::StatusOr<AdmWeighting> ParseAdmWeighting(const std::string& text) {
  if (text == "uniform") return AdmWeighting::kUniform;
  if (text == "paper") return AdmWeighting::kPaper;
  return Bad(absl::StrCat("--adm-weighting '", text, "' is not allowed; use uniform or paper"));
}

const char* AdmWeightingName(AdmWeighting weighting) {
  return weighting == AdmWeighting::kUniform ? "uniform" : "paper";
}

double LearningRateScale(int64_t step, int64_t steps, int64_t decay_start, double floor) {
  if (step < decay_start || steps - 1 <= decay_start) return 1.0;
  const double progress = static_cast<double>(std::min(step, steps - 1) - decay_start) /
                          static_cast<double>(steps - 1 - decay_start);  // (0, 1]
  return floor + (1.0 - floor) * 0.5 * (1.0 + std::cos(std::acos(-1.0) * progress));
}

absl::Status ValidateConvertOptions(const ConvertOptions& o, int64_t num_layers) {
  if (o.base_dir.empty() || o.cache_dir.empty() || o.work_dir.empty()) {
    return Bad(
        "conversion needs --base (the teacher folder), --cache (its trajectories) and --work");
  }
  if (o.select.mode == SelectMode::kLayers) {
    if (static_cast<int64_t>(o.select.layers.size()) != o.linear_layers) {
      return Bad(absl::StrCat("--select lists ", o.select.layers.size(),
                              " layers but --linear-layers is ", o.linear_layers,
                              "; they must agree"));
    }
    std::vector<bool> seen(num_layers, false);
    for (int64_t l : o.select.layers) {
      if (l < 0 || l >= num_layers) {
        return Bad(
            absl::StrCat("--select layer ", l, " is not a layer index in [0, ", num_layers, ")"));
      }
      if (seen[l]) return Bad(absl::StrCat("--select lists layer ", l, " twice"));
      seen[l] = true;
    }
    if (o.linear_layers >= num_layers) {
      return Bad(absl::StrCat("--linear-layers must be in [1, ", num_layers - 1,
                              "] (the model has ", num_layers, " layers), got ", o.linear_layers));
    }
  } else {
    SelectionOptions sel{num_layers, o.linear_layers, o.pinned};
    LV_RETURN_IF_ERROR(ValidateSelection(sel));
  }
  if (o.steps < 1 || o.batch < 1) return Bad("--steps and --batch must be >= 1");
  if (!(o.lr > 0) || !(o.feature_map_lr > 0) || !(o.gate_lr > 0) || !(o.lambda >= 0)) {
    return Bad("need --lr > 0, --feature-map-lr > 0, --gate-lr > 0 and --lambda >= 0");
  }
  if (!(o.lr_floor > 0 && o.lr_floor <= 1)) {
    return Bad(absl::StrCat("--lr-floor must be in (0, 1] (1: no decay), got ", o.lr_floor));
  }
  if (!(o.r_init > 0.5 && o.r_init <= 1.0)) {
    return Bad(absl::StrCat(
        "--r-init must be in (0.5, 1] (the gates start on the softmax side), got ", o.r_init));
  }
  if (!(o.anneal_fraction > 0 && o.anneal_fraction <= 1) ||
      !(o.finetune_fraction >= 0 && o.finetune_fraction < 1)) {
    return Bad("--anneal-fraction must be in (0, 1] and --finetune-fraction in [0, 1)");
  }
  if (!(o.uncond_fraction >= 0 && o.uncond_fraction <= 1)) {
    return Bad("--uncond-fraction must be in [0, 1]");
  }
  if (o.heuristic_points < 1) return Bad("--heuristic-points must be >= 1");
  if (!(o.adm_anchor >= 0 && o.adm_anchor <= 100)) {
    return Bad(absl::StrCat("--adm-anchor must be in [0, 100] (0: pure ADM), got ", o.adm_anchor));
  }
  if (!(o.divergence_factor >= 0)) return Bad("--divergence-factor must be >= 0 (0: off)");
  if (o.max_rollbacks < 0) return Bad("--max-rollbacks must be >= 0 (0: stop at a divergence)");
  if (o.divergence_window < 1) return Bad("--divergence-window must be >= 1");
  if (o.log_every < 1 || o.checkpoint_every < 1) {
    return Bad("--log-every and --checkpoint-every must be >= 1");
  }
  return absl::OkStatus();
}

}  // namespace linvideo::core::posttrain
