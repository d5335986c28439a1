#pragma once
// Serving scale-out: several linvideo-server replicas behind one name (a Kubernetes headless
// Service with client-side round robin, `dns:///linvideo-headless:50051`), each with its own
// engine, queue and durable journal. A Submit lands on any replica; Get and Cancel must reach the
// replica that holds the request. The rule here: **the request id names its replica.** With
// --replica.advertise=HOST[:PORT] (the address the other replicas reach this one at; the port
// defaults to the one it listens on) every generated id ends in ".HOST_PORT", e.g.
// "r1733312345678901-7.10.244.1.7_50051", and a replica that gets Get or Cancel for another
// replica's id forwards the call there (once: a forwarded call is never forwarded again) and
// returns its answer. Ids a client chose itself (GenerateRequest.request_id) carry no replica and
// are only found on the replica that accepted them (docs/deploy.md).
// Thread safety: all methods may be called from any thread.

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "linvideo/v1/generation.grpc.pb.h"

namespace linvideo::server {

// --replica.advertise: HOST (letters, digits, '.', '-') with an optional :PORT (1..65535; 0 or
// absent: the listening port). INVALID_ARGUMENT saying what is allowed.
struct ReplicaAddress {
  std::string host;
  int port = 0;
};
absl::StatusOr<ReplicaAddress> ParseAdvertise(const std::string& text);

// The id suffix of a replica: "HOST_PORT". At most kMaxReplicaSuffix characters, so that ids
// stay within the 64 characters RequestTable::ValidateId allows.
inline constexpr size_t kMaxReplicaSuffix = 36;
std::string ReplicaSuffix(const ReplicaAddress& a);
// The replica an id names ("HOST:PORT"), or nullopt for an id without one. Only ids of the
// generated form name a replica: "r<digits>-<digits>.HOST_PORT" (RequestTable::NewId); a
// client's own id such as "clip.part_7" names none.
std::optional<std::string> ReplicaOfId(const std::string& id);
// Whether `other` may be forwarded to from a replica advertising `self` (both hosts): DNS names
// with the same parent domain (linvideo-server-2.lv-peers from linvideo-server-0.lv-peers), IPv4
// addresses in the same /16 (a pod network), single-label names from a single-label name.
// Everything else is refused, so an id a client made up cannot make a replica dial an address of
// its choosing.
bool IsPeerHost(const std::string& self, const std::string& other);

// The metadata key a forwarded call carries (its value: the forwarding replica).
inline constexpr char kForwardedHeader[] = "x-linvideo-forwarded-by";

class ReplicaRouter {
 public:
  explicit ReplicaRouter(int max_message_bytes) : max_message_bytes_(max_message_bytes) {}
  // This replica's address, "HOST:PORT", once it listens.
  void SetSelf(const ReplicaAddress& self);
  std::string self() const;
  // The stub of the replica that holds `id`, or null when the id is this replica's or names none.
  // `address` receives the replica's "HOST:PORT". NOT_FOUND, saying why, for an id that names a
  // host outside this replica's peers (IsPeerHost).
  absl::StatusOr<std::shared_ptr<v1::Generation::Stub>> OwnerOf(const std::string& id,
                                                                std::string* address);
  // Channels kept at most; the least recently used one is closed beyond that (a stub in use
  // stays alive until its call returns).
  static constexpr size_t kMaxChannels = 64;
  size_t channels() const;

 private:
  struct Peer {
    std::shared_ptr<v1::Generation::Stub> stub;
    uint64_t last_use = 0;
  };
  const int max_message_bytes_;
  mutable absl::Mutex mu_;
  std::string self_ ABSL_GUARDED_BY(mu_);
  std::string self_host_ ABSL_GUARDED_BY(mu_);
  uint64_t uses_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, Peer> stubs_ ABSL_GUARDED_BY(mu_);
};

}  // namespace linvideo::server
