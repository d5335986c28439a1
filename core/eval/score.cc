#include "core/eval/score.h"

#include <algorithm>
#include <cmath>

#include "core/common/status.h"
#include "core/data/render.h"
#include "core/eval/metrics.h"

namespace linvideo::core::eval {
namespace {

absl::Status CheckVideo(const torch::Tensor& v, const char* what) {
  if (!v.defined() || v.dim() != 4 || v.size(3) != 3 || v.scalar_type() != torch::kUInt8 ||
      !v.device().is_cpu() || v.size(0) < 1 || v.size(1) < 1 || v.size(2) < 1) {
    return absl::InvalidArgumentError(
        std::string(what) + " must be a CPU uint8 video tensor [F, H, W, 3] with F, H, W >= 1");
  }
  return absl::OkStatus();
}

double Mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0.0 : s / v.size();
}

}  // namespace

Adherence ScoreAdherence(const Detection& d, const data::SceneSpec& spec) {
  Adherence a;
  a.background = d.background_known && d.background == spec.background ? 1.0 : 0.0;
  a.count = d.objects.size() == spec.objects.size() ? 1.0 : 0.0;
  const double n = static_cast<double>(spec.objects.size());
  for (const data::ObjectSpec& o : spec.objects) {
    const int i = d.Find(o.color);
    if (i < 0) continue;
    const DetectedObject& found = d.objects[i];
    a.color += 1 / n;
    a.shape += (found.shape == o.shape) / n;
    a.motion += (found.motion == o.motion) / n;
    a.size += (found.size == o.size) / n;
  }
  const double eps = 1e-9;
  a.all = a.background > 1 - eps && a.count > 1 - eps && a.color > 1 - eps && a.shape > 1 - eps &&
                  a.motion > 1 - eps && a.size > 1 - eps
              ? 1.0
              : 0.0;
  return a;
}

Consistency ScoreConsistency(const Detection& d, const data::SceneSpec& spec) {
  Consistency c;
  const double n = static_cast<double>(spec.objects.size());
  const double scale = std::min(d.height, d.width);
  for (const data::ObjectSpec& o : spec.objects) {
    const int i = d.Find(o.color);
    if (i < 0) continue;
    const DetectedObject& found = d.objects[i];
    c.presence += found.presence / n;
    c.shape_stability += found.shape_agreement / n;
    const auto& t = found.track;
    int smooth = 0, interior = 0;
    for (size_t f = 1; f + 1 < t.size(); ++f) {
      if (!(t[f - 1].present && t[f].present && t[f + 1].present)) continue;
      ++interior;
      const double ax = t[f + 1].cx - 2 * t[f].cx + t[f - 1].cx;
      const double ay = t[f + 1].cy - 2 * t[f].cy + t[f - 1].cy;
      smooth += std::hypot(ax, ay) <= 0.01 * scale;
    }
    // A clip too short for accelerations counts as smooth wherever the object is present.
    c.smoothness +=
        (interior > 0 ? static_cast<double>(smooth) / (t.size() - 2) : found.presence) / n;
    double jerk2 = 0;
    int jerks = 0;
    for (size_t f = 0; f + 3 < t.size(); ++f) {
      if (!(t[f].present && t[f + 1].present && t[f + 2].present && t[f + 3].present)) continue;
      const double jx = t[f + 3].cx - 3 * t[f + 2].cx + 3 * t[f + 1].cx - t[f].cx;
      const double jy = t[f + 3].cy - 3 * t[f + 2].cy + 3 * t[f + 1].cy - t[f].cy;
      jerk2 += (jx * jx + jy * jy) / (scale * scale);
      ++jerks;
    }
    c.rms_jerk += (jerks > 0 ? std::sqrt(jerk2 / jerks) : 0.0) / n;
  }
  c.score = (c.presence + c.shape_stability + c.smoothness) / 3;
  return c;
}

absl::StatusOr<Fidelity> CompareVideos(const torch::Tensor& video, const torch::Tensor& reference) {
  LV_RETURN_IF_ERROR(CheckVideo(video, "video"));
  LV_RETURN_IF_ERROR(CheckVideo(reference, "reference video"));
  if (video.sizes() != reference.sizes()) {
    return absl::InvalidArgumentError("video and reference must have the same [F, H, W, 3] shape");
  }
  const torch::Tensor a = video.contiguous(), b = reference.contiguous();
  const int f = static_cast<int>(a.size(0)), h = static_cast<int>(a.size(1)),
            w = static_cast<int>(a.size(2));
  Fidelity out;
  out.frame_psnr = FramePsnr(a.data_ptr<uint8_t>(), b.data_ptr<uint8_t>(), f, h, w);
  out.frame_ssim = FrameSsim(a.data_ptr<uint8_t>(), b.data_ptr<uint8_t>(), f, h, w);
  out.psnr = Mean(out.frame_psnr);
  out.ssim = Mean(out.frame_ssim);
  return out;
}

absl::StatusOr<VideoScore> ScoreVideo(const torch::Tensor& video, const data::SceneSpec& spec,
                                      const torch::Tensor* reference,
                                      const DetectorOptions& options) {
  LV_RETURN_IF_ERROR(CheckVideo(video, "video"));
  LV_RETURN_IF_ERROR(data::ValidateScene(spec));
  const torch::Tensor v = video.contiguous();
  const int frames = static_cast<int>(v.size(0)), height = static_cast<int>(v.size(1)),
            width = static_cast<int>(v.size(2));
  VideoScore s;
  s.detection = DetectScene(v.data_ptr<uint8_t>(), frames, height, width, options);
  s.adherence = ScoreAdherence(s.detection, spec);
  s.consistency = ScoreConsistency(s.detection, spec);

  // Frame quality: the subject's edges here vs on a ground-truth render of the same scene.
  const data::ObjectSpec& subject = spec.objects[0];
  const data::Rgb color = data::ColorRgb(subject.color);
  LV_ASSIGN_OR_RETURN(torch::Tensor truth, data::Render(spec, frames, height, width));
  const Detection truth_detection =
      DetectScene(truth.data_ptr<uint8_t>(), frames, height, width, options);
  const int ti = truth_detection.Find(subject.color);
  s.quality.reference_sharpness = ti < 0 ? 0.0
                                         : EdgeSharpness(truth.data_ptr<uint8_t>(), frames, height,
                                                         width, truth_detection.background_rgb,
                                                         color, truth_detection.objects[ti].track);
  const int i = s.detection.Find(subject.color);
  s.quality.sharpness =
      i < 0 ? 0.0
            : EdgeSharpness(v.data_ptr<uint8_t>(), frames, height, width,
                            s.detection.background_rgb, color, s.detection.objects[i].track);
  s.quality.background_noise = s.detection.background_noise;
  const double sharp = s.quality.reference_sharpness > 0
                           ? std::min(1.0, s.quality.sharpness / s.quality.reference_sharpness)
                           : 0.0;
  s.quality.score = sharp * std::max(0.0, 1 - s.quality.background_noise / kNoiseScale);

  if (reference != nullptr && reference->defined()) {
    LV_ASSIGN_OR_RETURN(s.fidelity, CompareVideos(v, *reference));
    s.has_fidelity = true;
  }
  return s;
}

ScoreSummary Summarize(const std::vector<VideoScore>& scores) {
  std::vector<const VideoScore*> pointers;
  pointers.reserve(scores.size());
  for (const VideoScore& s : scores) pointers.push_back(&s);
  return Summarize(pointers);
}

ScoreSummary Summarize(const std::vector<const VideoScore*>& scores) {
  ScoreSummary m;
  for (const VideoScore* s : scores) {
    ++m.videos;
    Adherence& a = m.adherence;
    a.background += s->adherence.background, a.color += s->adherence.color;
    a.shape += s->adherence.shape, a.motion += s->adherence.motion;
    a.size += s->adherence.size, a.count += s->adherence.count, a.all += s->adherence.all;
    Consistency& c = m.consistency;
    c.presence += s->consistency.presence, c.shape_stability += s->consistency.shape_stability;
    c.smoothness += s->consistency.smoothness, c.rms_jerk += s->consistency.rms_jerk;
    c.score += s->consistency.score;
    FrameQuality& q = m.quality;
    q.sharpness += s->quality.sharpness, q.reference_sharpness += s->quality.reference_sharpness;
    q.background_noise += s->quality.background_noise, q.score += s->quality.score;
    if (s->has_fidelity) {
      ++m.fidelity_videos;
      m.psnr += s->fidelity.psnr, m.ssim += s->fidelity.ssim;
    }
  }
  if (m.videos > 0) {
    const double n = m.videos;
    for (double* x :
         {&m.adherence.background, &m.adherence.color, &m.adherence.shape, &m.adherence.motion,
          &m.adherence.size, &m.adherence.count, &m.adherence.all, &m.consistency.presence,
          &m.consistency.shape_stability, &m.consistency.smoothness, &m.consistency.rms_jerk,
          &m.consistency.score, &m.quality.sharpness, &m.quality.reference_sharpness,
          &m.quality.background_noise, &m.quality.score}) {
      *x /= n;
    }
  }
  if (m.fidelity_videos > 0) m.psnr /= m.fidelity_videos, m.ssim /= m.fidelity_videos;
  m.adherence_mean = m.adherence.Mean();
  return m;
}

}  // namespace linvideo::core::eval
