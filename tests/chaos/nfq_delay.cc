// nfq_delay: holds every packet of an NFQUEUE for a random delay, then lets
// it go. This kernel has no netem, so the chaos harness (tests/chaos/) gets
// delay and reordering from this helper instead: it runs inside one node's
// network namespace, an iptables rule there sends the packets that node
// receives to the queue (input, not output: see chaos/net.py), and each
// packet is accepted after delay_ms +- jitter_ms (uniform). Packets whose
// delays cross leave in a different order from the one they came in, which
// is the reordering.
//
//   nfq_delay --queue N --delay-ms 100 --jitter-ms 50 [--seed S]
//
// Prints "ready" on stdout once bound (the harness waits for it before
// adding the rule; the rule has --queue-bypass, so packets pass untouched
// while no helper is bound). On SIGTERM or SIGINT it lets every held packet
// go at once and exits 0; a final line on stderr counts packets.
#include <arpa/inet.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <linux/netfilter.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <queue>
#include <random>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Held {
  Clock::time_point due;
  uint32_t id;
  bool operator>(const Held& o) const { return due > o.due; }
};

struct State {
  std::priority_queue<Held, std::vector<Held>, std::greater<>> held;
  std::mt19937_64 rng;
  std::uniform_int_distribution<int64_t> delay_us;
  uint64_t packets = 0;
  size_t max_held = 0;
};

volatile sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }

// Called by nfq_handle_packet for each queued packet: note it, no verdict yet.
int OnPacket(nfq_q_handle*, nfgenmsg*, nfq_data* nfa, void* data) {
  auto* st = static_cast<State*>(data);
  nfqnl_msg_packet_hdr* ph = nfq_get_msg_packet_hdr(nfa);
  if (ph == nullptr) return 0;
  int64_t us = st->delay_us(st->rng);
  st->held.push({Clock::now() + std::chrono::microseconds(us), ntohl(ph->packet_id)});
  ++st->packets;
  if (st->held.size() > st->max_held) st->max_held = st->held.size();
  return 0;
}

[[noreturn]] void Usage(const char* why) {
  std::fprintf(stderr,
               "nfq_delay: %s\nusage: nfq_delay --queue N --delay-ms MS --jitter-ms MS "
               "[--seed S]\n",
               why);
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  long queue = -1, delay_ms = -1, jitter_ms = 0;
  uint64_t seed = std::random_device{}();
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) Usage(("missing value for " + a).c_str());
    char* end = nullptr;
    unsigned long long v = std::strtoull(argv[++i], &end, 10);
    if (*end != '\0') Usage(("not a number: " + a).c_str());
    if (a == "--queue") {
      queue = static_cast<long>(v);
    } else if (a == "--delay-ms") {
      delay_ms = static_cast<long>(v);
    } else if (a == "--jitter-ms") {
      jitter_ms = static_cast<long>(v);
    } else if (a == "--seed") {
      seed = v;
    } else {
      Usage(("unknown option " + a).c_str());
    }
  }
  if (queue < 0 || queue > 65535) Usage("--queue must be 0-65535");
  if (delay_ms < 0 || jitter_ms < 0 || jitter_ms > delay_ms) {
    Usage("need --delay-ms >= --jitter-ms >= 0");
  }

  State st;
  st.rng.seed(seed);
  st.delay_us = std::uniform_int_distribution<int64_t>((delay_ms - jitter_ms) * 1000,
                                                       (delay_ms + jitter_ms) * 1000);

  nfq_handle* h = nfq_open();
  if (h == nullptr) {
    std::perror("nfq_delay: nfq_open");
    return 1;
  }
  nfq_q_handle* qh = nfq_create_queue(h, static_cast<uint16_t>(queue), &OnPacket, &st);
  if (qh == nullptr) {
    std::perror("nfq_delay: nfq_create_queue (is the queue number taken?)");
    return 1;
  }
  // Only the verdict matters, not the bytes. GSO packets come whole (no
  // segmentation on our account); when the queue is full, packets pass
  // rather than drop, so loss stays what the loss rule says.
  if (nfq_set_mode(qh, NFQNL_COPY_META, 0) < 0 || nfq_set_queue_maxlen(qh, 65536) < 0) {
    std::perror("nfq_delay: queue set-up");
    return 1;
  }
  uint32_t flags = NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO;
  if (nfq_set_queue_flags(qh, flags, flags) < 0) std::perror("nfq_delay: queue flags (ignored)");
  int fd = nfq_fd(h);
  int rcvbuf = 8 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf));

  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  std::printf("ready\n");
  std::fflush(stdout);
  std::fprintf(stderr, "nfq_delay: queue %ld delay %ld+-%ld ms seed %llu\n", queue, delay_ms,
               jitter_ms, static_cast<unsigned long long>(seed));

  std::vector<char> buf(1 << 17);
  uint64_t overruns = 0;
  while (!g_stop) {
    int timeout_ms = -1;
    if (!st.held.empty()) {
      auto wait =
          std::chrono::duration_cast<std::chrono::milliseconds>(st.held.top().due - Clock::now());
      timeout_ms = wait.count() < 0 ? 0 : static_cast<int>(wait.count()) + 1;
    }
    pollfd p{fd, POLLIN, 0};
    int r = poll(&p, 1, timeout_ms);
    if (r < 0 && errno != EINTR) {
      std::perror("nfq_delay: poll");
      break;
    }
    if (r > 0 && (p.revents & POLLIN)) {
      // Drain what is there without blocking.
      for (;;) {
        ssize_t n = recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
        if (n < 0) {
          // ENOBUFS: the kernel dropped notifications (fail-open lets those
          // packets through); keep going.
          if (errno == ENOBUFS) {
            ++overruns;
            continue;
          }
          break;
        }
        nfq_handle_packet(h, buf.data(), static_cast<int>(n));
      }
    }
    auto now = Clock::now();
    while (!st.held.empty() && st.held.top().due <= now) {
      nfq_set_verdict(qh, st.held.top().id, NF_ACCEPT, 0, nullptr);
      st.held.pop();
    }
  }
  while (!st.held.empty()) {
    nfq_set_verdict(qh, st.held.top().id, NF_ACCEPT, 0, nullptr);
    st.held.pop();
  }
  nfq_destroy_queue(qh);
  nfq_close(h);
  std::fprintf(stderr, "nfq_delay: %llu packets, at most %zu held, %llu overruns\n",
               static_cast<unsigned long long>(st.packets), st.max_held,
               static_cast<unsigned long long>(overruns));
  return 0;
}
