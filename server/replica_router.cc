#include "server/replica_router.h"

#include <string_view>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace linvideo::server {

namespace {

bool ValidHost(const std::string& host) {
  if (host.empty()) return false;
  for (char c : host) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-') return false;
  }
  return true;
}

bool AllDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// "r<digits>-<digits>": the part of a generated id before its replica suffix.
bool GeneratedPrefix(std::string_view p) {
  const size_t dash = p.find('-');
  return p.size() > 1 && p[0] == 'r' && dash != std::string_view::npos &&
         AllDigits(p.substr(1, dash - 1)) && AllDigits(p.substr(dash + 1));
}

// The four octets of a dotted IPv4 address, or false.
bool Ipv4(const std::string& host, std::vector<std::string>* octets) {
  *octets = absl::StrSplit(host, '.');
  if (octets->size() != 4) return false;
  for (const std::string& o : *octets) {
    int v = 0;
    if (!AllDigits(o) || !absl::SimpleAtoi(o, &v) || v > 255) return false;
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

bool IsPeerHost(const std::string& self, const std::string& other) {
  std::vector<std::string> a, b;
  const bool ip_self = Ipv4(self, &a);
  if (ip_self || Ipv4(other, &b)) {
    return ip_self && Ipv4(other, &b) && a[0] == b[0] && a[1] == b[1];
  }
  const size_t ds = self.find('.'), dot = other.find('.');
  // Single-label names (compose-style "linvideo-a"): peers are other single-label names.
  if (ds == std::string::npos || dot == std::string::npos) {
    return ds == std::string::npos && dot == std::string::npos;
  }
  const std::string parent = self.substr(ds + 1);
  return !parent.empty() && dot > 0 && other.substr(dot + 1) == parent;
}

std::optional<std::string> ReplicaOfId(const std::string& id) {
  const size_t dot = id.find('.');
  if (dot == std::string::npos || !GeneratedPrefix(std::string_view(id).substr(0, dot))) {
    return std::nullopt;
  }
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
  self_host_ = self.host;
}

std::string ReplicaRouter::self() const {
  absl::MutexLock l(&mu_);
  return self_;
}

size_t ReplicaRouter::channels() const {
  absl::MutexLock l(&mu_);
  return stubs_.size();
}

absl::StatusOr<std::shared_ptr<v1::Generation::Stub>> ReplicaRouter::OwnerOf(const std::string& id,
                                                                             std::string* address) {
  std::optional<std::string> owner = ReplicaOfId(id);
  absl::MutexLock l(&mu_);
  if (!owner.has_value() || self_.empty() || *owner == self_) return nullptr;
  const std::string host = owner->substr(0, owner->rfind(':'));
  if (!IsPeerHost(self_host_, host)) {
    return absl::NotFoundError(absl::StrCat(
        "request '", id, "' names replica ", *owner, ", which is not a peer of this replica (",
        self_,
        "): requests are forwarded only to hosts of the same parent domain (or, for IPv4 "
        "addresses, the same /16) as --replica.advertise"));
  }
  *address = *owner;
  Peer& peer = stubs_[*owner];
  peer.last_use = ++uses_;
  if (peer.stub == nullptr) {
    // Replicas talk plaintext inside the cluster network (the pod network or a mesh encrypts);
    // a channel reconnects by itself, so one per replica is kept (up to kMaxChannels).
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(max_message_bytes_);
    peer.stub = v1::Generation::NewStub(
        grpc::CreateCustomChannel(*owner, grpc::InsecureChannelCredentials(), args));
    if (stubs_.size() > kMaxChannels) {
      auto oldest = stubs_.begin();
      for (auto it = stubs_.begin(); it != stubs_.end(); ++it) {
        if (it->second.last_use < oldest->second.last_use) oldest = it;
      }
      stubs_.erase(oldest);  // never the new one: it has the highest last_use
    }
  }
  return peer.stub;
}

}  // namespace linvideo::server
