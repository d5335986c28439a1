#include "server/replica_router.h"

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace linvideo::server {

namespace {

bool ValidHost(const std::string& host) {
  if (host.empty()) return false;
  for (char c : host) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-') return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<ReplicaAddress> ParseAdvertise(const std::string& text) {
  const auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat(
        "replica.advertise='", text, "': ", why,
        "; allowed: HOST or HOST:PORT, HOST of letters, digits, '.' and '-' (an IPv4 address or a "
        "DNS name such as linvideo-0.linvideo-headless), PORT 1..65535 (absent: the listening "
        "port)"));
  };
  ReplicaAddress a;
  const size_t colon = text.rfind(':');
  a.host = text.substr(0, colon);
  if (colon != std::string::npos) {
    if (!absl::SimpleAtoi(text.substr(colon + 1), &a.port) || a.port < 0 || a.port > 65535) {
      return bad("the port is not a number in 1..65535");
    }
  }
  if (!ValidHost(a.host)) return bad("the host has characters other than [A-Za-z0-9.-]");
  ReplicaAddress longest = a;
  longest.port = 65535;
  if (ReplicaSuffix(longest).size() > kMaxReplicaSuffix) {
    return bad(absl::StrCat("the host is too long for request ids (at most ", kMaxReplicaSuffix - 6,
                            " characters)"));
  }
  return a;
}

std::string ReplicaSuffix(const ReplicaAddress& a) { return absl::StrCat(a.host, "_", a.port); }

std::optional<std::string> ReplicaOfId(const std::string& id) {
  const size_t dot = id.find('.');
  if (dot == std::string::npos) return std::nullopt;
  const std::string suffix = id.substr(dot + 1);
  const size_t under = suffix.rfind('_');
  int port = 0;
  if (under == std::string::npos || !absl::SimpleAtoi(suffix.substr(under + 1), &port) ||
      port < 1 || port > 65535 || !ValidHost(suffix.substr(0, under))) {
    return std::nullopt;
  }
  return absl::StrCat(suffix.substr(0, under), ":", port);
}

void ReplicaRouter::SetSelf(const ReplicaAddress& self) {
  absl::MutexLock l(&mu_);
  self_ = absl::StrCat(self.host, ":", self.port);
}

std::string ReplicaRouter::self() const {
  absl::MutexLock l(&mu_);
  return self_;
}

v1::Generation::Stub* ReplicaRouter::OwnerOf(const std::string& id, std::string* address) {
  std::optional<std::string> owner = ReplicaOfId(id);
  absl::MutexLock l(&mu_);
  if (!owner.has_value() || self_.empty() || *owner == self_) return nullptr;
  *address = *owner;
  auto& stub = stubs_[*owner];
  if (stub == nullptr) {
    // Replicas talk plaintext inside the cluster network (the pod network or a mesh encrypts);
    // a channel reconnects by itself, so one per replica lives as long as the server.
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(max_message_bytes_);
    stub = v1::Generation::NewStub(
        grpc::CreateCustomChannel(*owner, grpc::InsecureChannelCredentials(), args));
  }
  return stub.get();
}

}  // namespace linvideo::server
