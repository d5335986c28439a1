// linvideo: command-line client of linvideo-server. `linvideo help` lists the commands.
#include <cstdio>
#include <iostream>

#include "client/cli.h"

namespace {

const char kUsage[] = R"(linvideo: client of linvideo-server (gRPC linvideo.v1).
Usage: linvideo [--server=HOST:PORT] [--timeout=SECONDS] [--token=T | --token_file=F] [--tls_ca=PEM]
                [--tls_cert=PEM --tls_key=PEM] [--lb_policy=pick_first|round_robin]
                COMMAND [--flag=value ...]
Commands:
  generate  --prompt=TEXT --out=FILE  stream one generation: queue position, step progress, file
            [--negative_prompt= --model= --width= --height= --frames= --steps= --guidance= --shift=
             --sampler=unipc|euler|fewstep --seed= --fps= --format=mp4|webm|png --priority=low|normal|high
             --id=REQUEST_ID --quiet --retries=N]   (--format=png: --out is a folder, one PNG
             per frame; --retries: call again on UNAVAILABLE, after 1, 2, 4 ... 30 s)
  submit    (generate's flags, no --out)   enqueue and print the request id
  status    --id=ID [--out=FILE]      state, position, step; writes the result when done
  cancel    --id=ID
  models [--lineage]                  served models, their limits, samplers (and lineage)
  admin     checkpoints | load --model=NAME --path=DIR | rollback --model=NAME |
            drain [--wait] | pause | resume     (needs the server's token)
  jobs      start convert --base=MODEL --linear_layers=K [--select=auto|heuristic|layers:I,J
            --pinned=0|none --objective=adm|mse --steps= --lr= --seed= --batch= --trajectories=
            --trajectory_steps= --checkpoint_every= --output_name=NAME --activate --activate_as=
            --gate_prompts=seen|heldout|all --gate_seeds= --gate_steps= --gate_min_psnr=DB
            --gate_max_drop=adherence:0.05,consistency:0.02 --id=JOB_ID] [--watch]
            | start distill --base=MODEL [--timesteps=1000,750,500,250 --steps= --fake_updates=
            --real_guidance= --real=TEACHER --lr= --fake_lr= --seed= --batch= --trajectories=
            --trajectory_steps= --checkpoint_every= and the output/activate/gate flags above]
            | list [--state=running] | get ID | watch ID | cancel ID   (needs the server's token)
            watch: a progress bar until the job ends; exit 0 when it succeeded, 1 otherwise
  health    [--service=NAME]          grpc.health.v1 Check of the server (or of NAME, e.g.
            linvideo.v1.Generation); prints the status, exit 0 only when SERVING, 14 when
            NOT_SERVING (paused, draining); the call's deadline is 5 s unless --timeout is given
  bench     --clients=N (--seconds=T | --requests=M) [--mixed] [--out_dir=DIR] [generate's flags]
            throughput, latency percentiles, errors by status (DIR: keep videos as seed-S.mp4)
Defaults: --server=127.0.0.1:50051, --timeout=600 (deadline of every call).
Replicas: --server=dns:///linvideo-headless:50051 --lb_policy=round_robin spreads calls over
every address the name resolves to (or --server=ipv4:10.0.0.1:50051,10.0.0.2:50051); ids from
submit name the replica that holds the request, and any replica forwards status/cancel to it.
Exit status: 0 ok, 64 usage error, otherwise the gRPC status code of the failed call.
)";

}  // namespace

int main(int argc, char** argv) {
  using namespace linvideo::client;
  // Global flags come before the command.
  int i = 1;
  bool help = false;
  while (i < argc && std::string(argv[i]).rfind("--", 0) == 0) {
    help = help || std::string(argv[i]) == "--help";
    ++i;
  }
  if (help || (i < argc && (std::string(argv[i]) == "help" || std::string(argv[i]) == "-h"))) {
    std::cout << kUsage;
    return 0;
  }
  if (i >= argc) {
    std::cerr << kUsage;
    return 64;
  }
  const std::string cmd = argv[i];
  Args args = ParseArgs(argc, argv, 1);
  args.words.erase(args.words.begin());  // the command
  if (cmd == "generate") return CmdGenerate(args);
  if (cmd == "submit") return CmdSubmit(args);
  if (cmd == "status") return CmdStatus(args);
  if (cmd == "cancel") return CmdCancel(args);
  if (cmd == "models") return CmdModels(args);
  if (cmd == "admin") return CmdAdmin(args);
  if (cmd == "bench") return CmdBench(args);
  if (cmd == "jobs") return CmdJobs(args);
  if (cmd == "health") return CmdHealth(args);
  std::cerr << "unknown command '" << cmd << "'; run `linvideo help`\n";
  return 64;
}
