#include "agent/daemon/check.h"

#include "agent/store/ignore.h"
#include "agent/tls/context.h"
#include "agent/tls/keyring.h"

namespace gossync::daemon {

ConfigLoad CheckConfig(const std::string& path) {
  ConfigLoad load = LoadConfig(path);
  if (!load.ok()) return load;
  const Config& c = load.config;
  for (size_t i = 0; i < c.ignore.size(); ++i) {
    Result<store::IgnoreMatcher> m = store::IgnoreMatcher::Create({c.ignore[i]});
    if (!m.ok()) load.errors.push_back("ignore[" + std::to_string(i) + "]: " + m.status().message());
  }
  for (size_t i = 0; i < c.hooks.size(); ++i) {
    Result<store::IgnoreMatcher> m = store::IgnoreMatcher::Create({c.hooks[i].pattern});
    if (!m.ok()) {
      load.errors.push_back("hook[" + std::to_string(i) + "].pattern: " + m.status().message());
    }
  }
  Result<tls::LoadedKeyring> ring = tls::LoadKeyring(c.gossip.keyring);
  if (!ring.ok()) load.errors.push_back("gossip.keyring: " + ring.status().message());
  tls::TlsConfig t;
  t.cert = c.repair.cert;
  t.key = c.repair.key;
  t.ca = c.repair.ca;
  t.role = tls::Role::kServer;
  Result<tls::SslCtxPtr> ctx = tls::MakeContext(t);
  if (!ctx.ok()) {
    load.errors.push_back("repair.cert: " + ctx.status().message());
  } else {
    Result<std::string> name = tls::OwnName(ctx->get());
    if (!name.ok()) {
      load.errors.push_back("repair.cert: " + name.status().message());
    } else if (*name != c.node) {
      load.errors.push_back("repair.cert: the certificate names node \"" + *name +
                            "\" but node is \"" + c.node + "\"");
    }
  }
  return load;
}

}  // namespace gossync::daemon
