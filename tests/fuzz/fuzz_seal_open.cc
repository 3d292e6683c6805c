// libFuzzer: sealing (tls::Seal / tls::Open). Open never crashes and lets no
// unauthenticated byte out; whatever is sealed opens to itself, and with any
// one bit flipped it does not open.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "agent/tls/keyring.h"
#include "agent/tls/seal.h"
#include "gossync/status.h"

namespace {

const gossync::tls::Keyring& Ring() {
  static const gossync::tls::Keyring* ring = [] {
    std::vector<gossync::tls::GossipKeyBytes> keys(2);
    for (size_t i = 0; i < keys[0].size(); ++i) {
      keys[0][i] = static_cast<uint8_t>(i);
      keys[1][i] = static_cast<uint8_t>(255 - i);
    }
    auto r = gossync::tls::Keyring::FromKeys(keys);
    GOSSYNC_CHECK(r.ok());
    return new gossync::tls::Keyring(std::move(*r));
  }();
  return *ring;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gossync::tls;
  std::span<const uint8_t> in(data, size);
  std::vector<uint8_t> plain;
  gossync::Status opened = Open(Ring(), in, &plain);
  if (opened.ok()) {
    GOSSYNC_CHECK(plain.size() + kSealOverhead == size);
  } else {
    GOSSYNC_CHECK(plain.empty());
    GOSSYNC_CHECK(ClassifyOpenError(opened) != OpenError::kNone);
  }
  // The input as a plaintext: it round-trips, and a flipped bit is caught.
  std::vector<uint8_t> sealed, back;
  gossync::Status s = Seal(Ring(), in, &sealed);
  if (!s.ok()) {
    GOSSYNC_CHECK(size > kMaxSealPlaintext);
    return 0;
  }
  GOSSYNC_CHECK(Open(Ring(), sealed, &back).ok() && back == std::vector<uint8_t>(in.begin(), in.end()));
  size_t bit = size == 0 ? 0 : (size_t{data[0]} << 8 | data[size - 1]) % (sealed.size() * 8);
  sealed[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
  GOSSYNC_CHECK(!Open(Ring(), sealed, &back).ok() && back.empty());
  return 0;
}
