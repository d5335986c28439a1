// End-to-end: the real linvideo-server binary on loopback, driven by the real `linvideo` CLI.
// The model is the server's deterministic fake executor (fake_model.json), so these tests check the
// serving stack (API, validation, batching, queueing, cancel, deadlines, swap, drain, auth,
// metrics) in seconds; the pipeline adapter has its own tests.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "media/video_decoder.h"
#include "tests/e2e/server_harness.h"

namespace linvideo::e2e {
namespace {

std::string MakeRoot(const std::string& suffix = "") {
  const std::string root =
      ::testing::TempDir() + "/server_e2e_" + std::to_string(getpid()) + suffix;
  Shell("rm -rf " + root + " && mkdir -p " + root + "/ckpt/a " + root + "/ckpt/b " + root +
        "/ckpt/bad");
  std::ofstream(root + "/ckpt/a/fake_model.json") << R"({"step_ms": 15, "item_ms": 2})";
  std::ofstream(root + "/ckpt/b/fake_model.json") << R"({"step_ms": 15, "item_ms": 2, "salt": 9})";
  std::ofstream(root + "/ckpt/bad/fake_model.json") << "{\"step_ms\": ";  // truncated: corrupt
  // A distilled 4-step model: it declares its sampler, and its lineage names its base.
  Shell("mkdir -p " + root + "/ckpt/fast");
  std::ofstream(root + "/ckpt/fast/fake_model.json")
      << R"({"step_ms": 15, "item_ms": 2, "salt": 4, "sampler": "fewstep",
             "timesteps": [1000, 750, 500, 250]})";
  std::ofstream(root + "/ckpt/fast/model_index.json")
      << R"({"linvideo": {"sampler": "fewstep", "timesteps": [1000, 750, 500, 250]},
             "linvideo_distillation": {"method": "dmd2", "base": "tiny-linvideo", "steps": 7}})";
  std::ofstream(root + "/token") << "s3cret\n";
  return root;
}

class ServerE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new std::string(MakeRoot());
    server_ = new ServerProcess();
    ASSERT_TRUE(server_->Start(
        *root_, {"--executor=fake", "--model=tiny=" + *root_ + "/ckpt/a",
                 "--model=fast=" + *root_ + "/ckpt/fast", "--checkpoint_root=" + *root_ + "/ckpt",
                 "--auth.admin_token_file=" + *root_ + "/token", "--scheduler.max_batch=4",
                 "--scheduler.max_queue=6", "--scheduler.max_queue_delay_ms=30",
                 "--limits.max_cost=200000"}))
        << ReadFile(*root_ + "/server.log");
  }
  static void TearDownTestSuite() {
    delete server_;
    delete root_;
  }
  static std::string Out(const std::string& name) { return *root_ + "/" + name; }
  static std::string* root_;
  static ServerProcess* server_;
};
std::string* ServerE2eTest::root_ = nullptr;
ServerProcess* ServerE2eTest::server_ = nullptr;

TEST_F(ServerE2eTest, StreamingGenerateProducesDecodableMp4) {
  CmdResult r = server_->Cli(
      "generate --prompt='a red ball' --width=48 --height=32 --frames=9 --steps=3 --seed=1 --out=" +
      Out("one.mp4"));
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("queued: position"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("step 3/3"), std::string::npos) << r.out;
  auto video = media::DecodeVideo(ReadFile(Out("one.mp4")));
  ASSERT_TRUE(video.ok()) << video.status();
  EXPECT_EQ(video->codec_name, "h264");
  EXPECT_EQ(video->frame_count, 9);
  EXPECT_EQ(video->width, 48);
  EXPECT_EQ(video->height, 32);
  r = server_->Cli("generate --prompt=x --format=webm --steps=2 --out=" + Out("one.webm"));
  ASSERT_EQ(r.rc, 0) << r.out;
  auto webm = media::DecodeVideo(ReadFile(Out("one.webm")));
  ASSERT_TRUE(webm.ok()) << webm.status();
  EXPECT_EQ(webm->codec_name, "vp9");
  // A streamed video stays for Get; streamed PNG frames are not kept once the call wrote them.
  r = server_->Cli("generate --prompt=x --steps=2 --id=clip-v --out=" + Out("clip-v.mp4"));
  ASSERT_EQ(r.rc, 0) << r.out;
  r = server_->Cli("status --id=clip-v --out=" + Out("clip-v-again.mp4"));
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(ReadFile(Out("clip-v-again.mp4")), ReadFile(Out("clip-v.mp4")));
  r = server_->Cli("generate --prompt=x --steps=2 --frames=5 --format=png --id=clip-f --out=" +
                   Out("clip-f"));
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_TRUE(std::filesystem::exists(Out("clip-f") + "/frame_0004.png"));
  r = server_->Cli("status --id=clip-f --out=" + Out("clip-f.png"));
  EXPECT_EQ(r.rc, 9) << r.out;  // FAILED_PRECONDITION
  EXPECT_NE(r.out.find("they are not kept"), std::string::npos) << r.out;
  EXPECT_NE(server_->Cli("status --id=clip-f").out.find("REQUEST_STATE_DONE"), std::string::npos);
}

TEST_F(ServerE2eTest, ConcurrentRequestsAreBatchedAndMatchSoloRuns) {
  const std::string args = " --prompt='a cat' --steps=6 --frames=5 --width=32 --height=32 --quiet ";
  ASSERT_EQ(server_->Cli("generate" + args + "--seed=5 --out=" + Out("solo.mp4")).rc, 0);
  const double before_sum = MetricSum(server_->Metrics(), "linvideo_batch_size_sum");
  const double before_count = MetricSum(server_->Metrics(), "linvideo_batch_size_count");
  // Four concurrent clients; seed 5 twice.
  std::string cmd;
  const int seeds[] = {5, 6, 5, 7};
  for (int i = 0; i < 4; ++i) {
    cmd += Bin("client/linvideo") + " --server=127.0.0.1:" + std::to_string(server_->port()) +
           " generate" + args + "--seed=" + std::to_string(seeds[i]) +
           " --out=" + Out("c" + std::to_string(i) + ".mp4") + " & ";
  }
  CmdResult r = Shell(cmd + "wait");
  ASSERT_EQ(r.rc, 0) << r.out;
  const std::string solo = ReadFile(Out("solo.mp4"));
  ASSERT_FALSE(solo.empty());
  EXPECT_EQ(ReadFile(Out("c0.mp4")), solo);
  EXPECT_EQ(ReadFile(Out("c2.mp4")), solo);
  EXPECT_NE(ReadFile(Out("c1.mp4")), solo);
  const std::string m = server_->Metrics();
  const double steps = MetricSum(m, "linvideo_batch_size_count") - before_count;
  const double items = MetricSum(m, "linvideo_batch_size_sum") - before_sum;
  ASSERT_GT(steps, 0);
  EXPECT_GT(items / steps, 1.0) << "mean batch size";
}

TEST_F(ServerE2eTest, EveryValidationErrorIsInvalidArgumentWithWhatIsAllowed) {
  struct Case {
    std::string flags, expect;
    int rc;
  } cases[] = {
      {"--width=33", "multiple of 16", 3},
      {"--height=512", "multiple of 16 in [16, 256]", 3},
      {"--frames=6", "4k+1", 3},
      {"--steps=500", "1..50", 3},
      {"--guidance=99", "guidance", 3},
      {"--shift=-1", "shift", 3},
      {"--shift=nan", "shift nan is not allowed; use a finite number", 3},
      {"--guidance=inf", "guidance inf is not allowed", 3},
      {"--shift=-0", "shift -0 is not allowed", 3},
      {"--fps=500", "1..60", 3},
      {"--id='bad id!'", "A-Za-z0-9", 3},
      {"--model=nope", "served models: fast, tiny", 5},
      {"--width=256 --height=256 --frames=33 --steps=50", "budget", 8},
  };
  for (const Case& c : cases) {
    CmdResult r = server_->Cli("generate --prompt=p --out=" + Out("x.mp4") + " " + c.flags);
    EXPECT_EQ(r.rc, c.rc) << c.flags << ": " << r.out;
    EXPECT_NE(r.out.find(c.expect), std::string::npos) << c.flags << ": " << r.out;
  }
  CmdResult empty = server_->Cli("generate --prompt= --out=" + Out("x.mp4"));
  EXPECT_EQ(empty.rc, 3) << empty.out;
  const std::string long_prompt(3000, 'a');
  CmdResult longp = server_->Cli("generate --prompt=" + long_prompt + " --out=" + Out("x.mp4"));
  EXPECT_EQ(longp.rc, 3) << longp.out;
}

TEST_F(ServerE2eTest, DistilledModelTakesOnlyItsDeclaredSampler) {
  // Defaults: the model's own 4 fewstep steps, no guidance.
  CmdResult r =
      server_->Cli("generate --model=fast --prompt='a red ball' --out=" + Out("fast.mp4"));
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("step 4/4"), std::string::npos) << r.out;
  EXPECT_TRUE(media::DecodeVideo(ReadFile(Out("fast.mp4"))).ok());
  r = server_->Cli(
      "generate --model=fast --prompt=x --steps=4 --guidance=1 --sampler=fewstep "
      "--quiet --out=" +
      Out("fast2.mp4"));
  EXPECT_EQ(r.rc, 0) << r.out;
  struct Case {
    std::string flags, expect;
  } cases[] = {
      {"--steps=50",
       "this model is distilled for exactly 4 steps (timesteps [1000, 750, 500, "
       "250]); use 4 or 0"},
      {"--guidance=5", "samples without classifier-free guidance"},
      {"--sampler=unipc", "sampler unipc is not allowed; this model is distilled for the fewstep"},
  };
  for (const Case& c : cases) {
    r = server_->Cli("generate --model=fast --prompt=p --out=" + Out("x.mp4") + " " + c.flags);
    EXPECT_EQ(r.rc, 3) << c.flags << ": " << r.out;  // INVALID_ARGUMENT
    EXPECT_NE(r.out.find(c.expect), std::string::npos) << c.flags << ": " << r.out;
  }
  // The other model keeps its sampler; fewstep on it is allowed (evenly spaced timesteps).
  r = server_->Cli("generate --model=tiny --prompt=x --steps=3 --sampler=fewstep --quiet --out=" +
                   Out("tiny-few.mp4"));
  EXPECT_EQ(r.rc, 0) << r.out;
  r = server_->Cli("models --lineage");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("sampler unipc"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("4 steps guidance 1, sampler fewstep only, timesteps 1000,750,500,250"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find(R"("linvideo_distillation":{"base":"tiny-linvideo","method":"dmd2")"),
            std::string::npos)
      << r.out;
}

TEST_F(ServerE2eTest, QueueFullIsResourceExhausted) {
  // 16 clients, max_batch 4 + max_queue 6: some must be refused with the limit in the message.
  CmdResult r = server_->Cli("bench --clients=16 --requests=16 --steps=20");
  EXPECT_NE(r.out.find("error 8 queue full"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("limit 6"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("error 13"), std::string::npos) << r.out;  // nothing else failed
}

// limits.requests_per_minute_per_peer: a client address gets its burst, then RESOURCE_EXHAUSTED
// with the limit and the wait in the message (its own server: the shared one has no rate).
TEST_F(ServerE2eTest, PerPeerRateLimitIsResourceExhausted) {
  const std::string dir = Out("rate");
  Shell("mkdir -p " + dir);
  ServerProcess s;
  ASSERT_TRUE(
      s.Start(dir, {"--executor=fake", "--model=tiny=" + Out("ckpt/a"),
                    "--limits.requests_per_minute_per_peer=6", "--limits.burst_per_peer=2"}))
      << ReadFile(dir + "/server.log");
  EXPECT_EQ(s.Cli("submit --prompt=a --steps=2").rc, 0);
  EXPECT_EQ(s.Cli("submit --prompt=b --steps=2").rc, 0);
  CmdResult r = s.Cli("submit --prompt=c --steps=2");
  EXPECT_EQ(r.rc, 8) << r.out;  // RESOURCE_EXHAUSTED
  EXPECT_NE(r.out.find("rate limit: 6 requests per minute per client address (burst 2)"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("retry in"), std::string::npos) << r.out;
  r = s.Cli("generate --prompt=d --steps=2 --out=" + dir + "/d.mp4");  // streaming: same bucket
  EXPECT_EQ(r.rc, 8) << r.out;
}

// limits.max_streams_per_connection: `bench` runs its clients over one channel (one connection);
// with 4 streams at once and a limit of 2, two are refused RESOURCE_EXHAUSTED at once, saying the
// limit, while two run; separate connections (separate CLI processes) are not limited together.
TEST_F(ServerE2eTest, PerConnectionStreamLimitIsResourceExhausted) {
  const std::string dir = Out("streams");
  Shell("mkdir -p " + dir);
  ServerProcess s;
  ASSERT_TRUE(s.Start(dir, {"--executor=fake", "--model=tiny=" + Out("ckpt/a"),
                            "--limits.max_streams_per_connection=2"}))
      << ReadFile(dir + "/server.log");
  CmdResult r = s.Cli("bench --clients=4 --requests=4 --prompt=x --steps=20 --quiet");
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_NE(r.out.find("ok=2 errors=2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("error 8 this connection already has 2 streaming Generate calls open"),
            std::string::npos)
      << r.out;
  std::string cmd;
  for (int i = 0; i < 3; ++i) {
    cmd += Bin("client/linvideo") + " --server=127.0.0.1:" + std::to_string(s.port()) +
           " generate --prompt=x --steps=20 --quiet --out=" + dir + "/c" + std::to_string(i) +
           ".mp4 & ";
  }
  r = Shell(cmd + "wait");
  EXPECT_EQ(r.out.find("RESOURCE_EXHAUSTED"), std::string::npos) << r.out;
  for (int i = 0; i < 3; ++i)
    EXPECT_FALSE(ReadFile(dir + "/c" + std::to_string(i) + ".mp4").empty());
}

// TLS with client certificates (tls.cert_file, tls.key_file, tls.client_ca_file), end to end with
// certificates made by openssl: a client certificate signed by the trusted CA gets in; none, one
// from another CA, or plaintext do not.
TEST_F(ServerE2eTest, MutualTlsAdmitsOnlyClientsWithATrustedCertificate) {
  const std::string d = Out("mtls");
  const std::string key = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  auto sign = [&](const std::string& name, const std::string& ca, const std::string& ext) {
    return "openssl req" + key + " -keyout " + name + ".key -out " + name +
           ".csr -subj /CN=" + name + " && printf '" + ext + "' > " + name +
           ".ext && openssl x509 -req -in " + name + ".csr -CA " + ca + ".pem -CAkey " + ca +
           ".key -CAcreateserial -days 2 -out " + name + ".pem -extfile " + name + ".ext && ";
  };
  CmdResult made =
      Shell("mkdir -p " + d + " && cd " + d + " && openssl req -x509" + key +
            " -keyout ca.key -out ca.pem -days 2 -subj /CN=linvideo-test-ca && openssl req -x509" +
            key + " -keyout other.key -out other.pem -days 2 -subj /CN=other-ca && " +
            sign("server", "ca", "subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth") +
            sign("client", "ca", "extendedKeyUsage=clientAuth") +
            sign("rogue", "other", "extendedKeyUsage=clientAuth") + "echo made 2>&1");
  ASSERT_EQ(made.rc, 0) << made.out;
  ServerProcess s;
  ASSERT_TRUE(s.Start(
      d,
      {"--executor=fake", "--model=tiny=" + Out("ckpt/a"), "--tls.cert_file=" + d + "/server.pem",
       "--tls.key_file=" + d + "/server.key", "--tls.client_ca_file=" + d + "/ca.pem"}))
      << ReadFile(d + "/server.log");
  const std::string ca = "--tls_ca=" + d + "/ca.pem ";
  CmdResult r = s.Cli(ca + "--tls_cert=" + d + "/client.pem --tls_key=" + d + "/client.key models");
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("tiny"), std::string::npos) << r.out;
  r = s.Cli(ca + "--tls_cert=" + d + "/client.pem --tls_key=" + d +
            "/client.key --timeout=20 generate --prompt=x --steps=2 --out=" + d + "/x.mp4");
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(s.Cli(ca + "--timeout=5 models").rc, 0);  // no client certificate
  EXPECT_NE(
      s.Cli(ca + "--tls_cert=" + d + "/rogue.pem --tls_key=" + d + "/rogue.key --timeout=5 models")
          .rc,
      0);                                        // signed by a CA the server does not trust
  EXPECT_NE(s.Cli("--timeout=5 models").rc, 0);  // plaintext
  r = s.Cli(ca + "--tls_cert=" + d + "/client.pem models");
  EXPECT_EQ(r.rc, 2) << r.out;
  EXPECT_NE(r.out.find("--tls_cert and --tls_key go together"), std::string::npos) << r.out;
}

// generate --retries: a call refused with UNAVAILABLE (here: the server is paused; the same code
// ends streaming calls at shutdown) is made again and succeeds once the server serves again.
TEST_F(ServerE2eTest, GenerateRetriesOnUnavailableWhenAsked) {
  const std::string admin = "--token_file=" + Out("token") + " admin ";
  ASSERT_EQ(server_->Cli(admin + "pause").rc, 0);
  CmdResult r = server_->Cli("generate --prompt=x --steps=2 --out=" + Out("noretry.mp4"));
  EXPECT_EQ(r.rc, 14) << r.out;  // UNAVAILABLE without --retries
  const std::string cli =
      Bin("client/linvideo") + " --server=127.0.0.1:" + std::to_string(server_->port()) + " ";
  r = Shell("(sleep 1.5; " + cli + admin + "resume) & " + cli +
            "generate --prompt=x --steps=2 --retries=4 --out=" + Out("retried.mp4") +
            " 2>&1; rc=$?; " + "wait; exit $rc");
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("UNAVAILABLE: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("retry 1/4 in 1 s"), std::string::npos) << r.out;
  EXPECT_FALSE(ReadFile(Out("retried.mp4")).empty());
  ASSERT_EQ(server_->Cli(admin + "resume").rc, 0);  // (idempotent) leave it serving
}

// generate --id after a call that ended without its client (here: its deadline; a dropped
// connection is the same on the server): the server cancelled that request, so the id runs
// again; before, it answered ALREADY_EXISTS until the result TTL. --retries also waits out an
// ALREADY_EXISTS while the first call's request winds down.
TEST_F(ServerE2eTest, GenerateWithTheIdOfACallThatEndedRunsAgain) {
  CmdResult r = server_->Cli("--timeout=0.3 generate --prompt=slow --steps=50 --id=clip-9 --out=" +
                             Out("clip9-first.mp4"));
  EXPECT_EQ(r.rc, 4) << r.out;  // DEADLINE_EXCEEDED
  r = server_->Cli("generate --prompt=x --steps=2 --id=clip-9 --retries=3 --out=" +
                   Out("clip9.mp4"));
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_TRUE(media::DecodeVideo(ReadFile(Out("clip9.mp4"))).ok());
  // Done, the id is taken for good (Get returns this video until its TTL).
  r = server_->Cli("generate --prompt=x --steps=2 --id=clip-9 --out=" + Out("clip9-again.mp4"));
  EXPECT_EQ(r.rc, 6) << r.out;  // ALREADY_EXISTS
  EXPECT_NE(r.out.find("already exists"), std::string::npos) << r.out;
  EXPECT_NE(server_->Cli("status --id=clip-9").out.find("REQUEST_STATE_DONE"), std::string::npos);
}

// A video that cannot be saved is an error naming the file (before: status --out printed "wrote"
// and exited 0), and nothing half-written is left under the name asked for.
TEST_F(ServerE2eTest, AnOutputThatCannotBeWrittenFailsAndLeavesNoFile) {
  const std::string missing = Out("no-such-folder") + "/x.mp4";
  CmdResult r = server_->Cli("generate --prompt=x --steps=2 --id=unsaved --out=" + missing);
  EXPECT_EQ(r.rc, 2) << r.out;  // UNKNOWN
  EXPECT_NE(r.out.find("cannot create " + missing), std::string::npos) << r.out;
  r = server_->Cli("submit --prompt=x --steps=2 --id=unsaved-2");
  ASSERT_EQ(r.rc, 0) << r.out;
  for (int i = 0; i < 100; ++i) {
    r = server_->Cli("status --id=unsaved-2 --out=" + missing);
    if (r.out.find("REQUEST_STATE_DONE") != std::string::npos || r.rc != 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(r.rc, 2) << r.out;
  EXPECT_NE(r.out.find("cannot create " + missing), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("wrote "), std::string::npos) << r.out;
  EXPECT_FALSE(std::filesystem::exists(missing));
  // PNG frames into a folder that cannot be made (a file is in the way).
  std::ofstream(Out("a-file")) << "x";
  r = server_->Cli("generate --prompt=x --steps=2 --frames=1 --format=png --out=" + Out("a-file") +
                   "/frames");
  EXPECT_EQ(r.rc, 2) << r.out;
  EXPECT_NE(r.out.find("cannot create the folder"), std::string::npos) << r.out;
}

TEST_F(ServerE2eTest, SubmitStatusCancelAndIdempotentIds) {
  CmdResult s = server_->Cli("submit --prompt=long --steps=50 --id=job-1");
  ASSERT_EQ(s.rc, 0) << s.out;
  EXPECT_EQ(s.out, "job-1\n");
  EXPECT_EQ(server_->Cli("submit --prompt=long --steps=50 --id=job-1").out,
            "job-1\n");  // idempotent
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  CmdResult st = server_->Cli("status --id=job-1");
  EXPECT_NE(st.out.find("REQUEST_STATE_RUNNING"), std::string::npos) << st.out;
  ASSERT_EQ(server_->Cli("cancel --id=job-1").rc, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  st = server_->Cli("status --id=job-1");
  EXPECT_NE(st.out.find("REQUEST_STATE_CANCELLED"), std::string::npos) << st.out;
  EXPECT_EQ(server_->Cli("status --id=nope").rc, 5);

  ASSERT_EQ(server_->Cli("submit --prompt=short --steps=2 --id=job-2").rc, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  st = server_->Cli("status --id=job-2 --out=" + Out("job2.mp4"));
  EXPECT_NE(st.out.find("REQUEST_STATE_DONE"), std::string::npos) << st.out;
  EXPECT_TRUE(media::DecodeVideo(ReadFile(Out("job2.mp4"))).ok());
}

TEST_F(ServerE2eTest, DeadlineExceededAndDisconnectCancels) {
  CmdResult r =
      server_->Cli("--timeout=0.3 generate --prompt=slow --steps=50 --out=" + Out("late.mp4"));
  EXPECT_EQ(r.rc, 4) << r.out;  // DEADLINE_EXCEEDED
  // The server dropped it within a step: nothing is left running shortly after.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const std::string metrics = server_->Metrics();
  EXPECT_EQ(MetricSum(metrics, "linvideo_running_requests"), 0);
  // Counted as the deadline it was, not as a client's cancel.
  bool counted = false;
  std::istringstream lines(metrics);
  for (std::string line; std::getline(lines, line);) {
    counted |= line.rfind("linvideo_requests_total{", 0) == 0 &&
               line.find("code=\"DEADLINE_EXCEEDED\"") != std::string::npos &&
               line.find("rpc=\"Generate\"") != std::string::npos;
  }
  EXPECT_TRUE(counted) << metrics;
}

TEST_F(ServerE2eTest, AdminNeedsTokenAndRefusesBadCheckpoints) {
  CmdResult r = server_->Cli("admin checkpoints");
  EXPECT_EQ(r.rc, 16) << r.out;  // UNAUTHENTICATED
  r = server_->Cli("--token=wrong admin checkpoints");
  EXPECT_EQ(r.rc, 7) << r.out;  // PERMISSION_DENIED
  r = server_->Cli("--token_file=" + Out("token") + " admin load --model=tiny --path=bad");
  EXPECT_EQ(r.rc, 9) << r.out;  // FAILED_PRECONDITION: corrupt
  EXPECT_NE(r.out.find("corrupt"), std::string::npos) << r.out;
  r = server_->Cli("--token_file=" + Out("token") + " admin load --model=tiny --path=../../");
  EXPECT_EQ(r.rc, 7) << r.out;  // outside the checkpoint root
  r = server_->Cli("--token_file=" + Out("token") + " admin load --model=tiny --path=missing");
  EXPECT_EQ(r.rc, 5) << r.out;
  r = server_->Cli("models");
  EXPECT_NE(r.out.find("tiny (default) v1"), std::string::npos) << r.out;  // old model still active
}

TEST_F(ServerE2eTest, PauseRefusesNewWorkUntilResume) {
  const std::string admin = "--token_file=" + Out("token") + " admin ";
  CmdResult r = server_->Cli(admin + "pause");
  ASSERT_EQ(r.rc, 0) << r.out;
  r = server_->Cli("generate --prompt=paused --steps=2 --out=" + Out("paused.mp4"));
  EXPECT_EQ(r.rc, 14) << r.out;  // UNAVAILABLE while admission is paused
  r = server_->Cli(admin + "resume");
  ASSERT_EQ(r.rc, 0) << r.out;
  r = server_->Cli("generate --prompt=resumed --steps=2 --out=" + Out("resumed.mp4"));
  EXPECT_EQ(r.rc, 0) << r.out;
}

TEST_F(ServerE2eTest, HotSwapUnderLoadHasZeroFailures) {
  const std::string bench =
      Bin("client/linvideo") + " --server=127.0.0.1:" + std::to_string(server_->port()) +
      " bench --clients=3 --seconds=2 --steps=4 > " + Out("bench.txt") + " 2>&1 & ";
  const std::string admin = Bin("client/linvideo") +
                            " --server=127.0.0.1:" + std::to_string(server_->port()) +
                            " --token_file=" + Out("token");
  CmdResult r =
      Shell(bench + "sleep 0.5; " + admin + " admin load --model=tiny --path=b && sleep 0.5 && " +
            admin + " admin rollback --model=tiny && sleep 0.3 && " + admin +
            " admin load --model=tiny --path=b; wait");
  ASSERT_EQ(r.rc, 0) << r.out;
  const std::string out = ReadFile(Out("bench.txt"));
  EXPECT_NE(out.find("errors=0"), std::string::npos) << out;
  EXPECT_NE(server_->Cli("models").out.find("tiny (default) v3"), std::string::npos);
  const std::string m = server_->Metrics();
  EXPECT_GE(MetricSum(m, "linvideo_checkpoint_swaps_total"), 3);
  // Admin.Rollback moved what was queued on v2 back to v1 (how many depends on timing).
  EXPECT_NE(ReadFile(*root_ + "/server.log").find("rollback model=tiny v2 -> v1, "),
            std::string::npos);
  // Restore for other tests: they do not depend on the version, only on determinism per version.
}

TEST_F(ServerE2eTest, MetricsAreScrapable) {
  const std::string m = server_->Metrics();
  for (const char* name :
       {"linvideo_requests_total", "linvideo_request_latency_seconds_bucket",
        "linvideo_queue_depth", "linvideo_running_requests", "linvideo_batch_size_bucket",
        "linvideo_step_duration_seconds_count", "linvideo_tokens_total", "linvideo_checkpoint_info",
        "linvideo_serving"}) {
    EXPECT_NE(m.find(name), std::string::npos) << name;
  }
}

TEST(ServerDrainTest, DrainFinishesInflightAndExitsCleanly) {
  const std::string root = MakeRoot("_drain");
  ServerProcess server;
  ASSERT_TRUE(server.Start(root, {"--executor=fake", "--model=tiny=" + root + "/ckpt/a",
                                  "--auth.admin_token_file=" + root + "/token"}));
  ASSERT_EQ(server.Cli("submit --prompt=p --steps=20 --id=inflight").rc, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  // Drain without waiting, then check new work is refused while the in-flight one finishes.
  CmdResult d = server.Cli("--token_file=" + root + "/token admin drain");
  ASSERT_EQ(d.rc, 0) << d.out;
  CmdResult refused = server.Cli("generate --prompt=p --out=" + root + "/x.mp4");
  EXPECT_TRUE(refused.rc == 14) << refused.out;  // UNAVAILABLE (draining or already shut down)
  EXPECT_EQ(server.Wait(20), 0);
}

TEST(ServerSigtermTest, SigtermDrainsAndExitsZero) {
  const std::string root = MakeRoot("_term");
  ServerProcess server;
  ASSERT_TRUE(server.Start(root, {"--executor=fake", "--model=tiny=" + root + "/ckpt/a"}));
  // A streaming client in flight while SIGTERM arrives still gets its video.
  const std::string gen = Bin("client/linvideo") +
                          " --server=127.0.0.1:" + std::to_string(server.port()) +
                          " generate --prompt=p --steps=15 --quiet --out=" + root + "/t.mp4";
  CmdResult r =
      Shell(gen + " & sleep 0.15; kill -TERM " + std::to_string(server.pid()) + "; wait %1");
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_TRUE(media::DecodeVideo(ReadFile(root + "/t.mp4")).ok());
  EXPECT_EQ(server.Wait(20), 0);
}

}  // namespace
}  // namespace linvideo::e2e
