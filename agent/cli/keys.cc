#include "agent/cli/keys.h"

#include "agent/tls/ca.h"
#include "agent/tls/keyring.h"

namespace gossync::cli {
namespace {

nlohmann::json Describe(const tls::IssuedFiles& f) {
  return {{"cert", f.cert_path},
          {"key", f.key_path},
          {"name", f.common_name},
          {"fingerprint", f.fingerprint},
          {"not_after", f.not_after}};
}

}  // namespace

Result<nlohmann::json> Keygen(const std::string& out, bool force) {
  GOSSYNC_RETURN_IF_ERROR(tls::WriteNewKeyring(out, force));
  return nlohmann::json{
      {"keyring", out},
      {"message", "wrote a new gossip keyring to " + out +
                      " (mode 0600); copy it to every node's gossip.keyring"}};
}

Result<nlohmann::json> CaInit(const std::string& dir, bool force) {
  Result<tls::IssuedFiles> f = tls::InitCa(dir, force);
  if (!f.ok()) return f.status();
  nlohmann::json j = Describe(*f);
  j["message"] = "wrote " + f->cert_path + " (give it to every node as repair.ca) and " +
                 f->key_path + " (keep it safe, off the servers)";
  return j;
}

Result<nlohmann::json> CaIssue(const std::string& dir, const std::string& node, int days) {
  Result<tls::IssuedFiles> f = tls::IssueNode(dir, node, days);
  if (!f.ok()) return f.status();
  nlohmann::json j = Describe(*f);
  j["message"] = "wrote " + f->cert_path + " and " + f->key_path + " for node " + node +
                 " (valid until " + f->not_after + ", fingerprint " + f->fingerprint + ")";
  return j;
}

}  // namespace gossync::cli
