// The C API from C++17: a small RAII wrapper of the kind a C++ engine would write
// (handles closed by destructors, statuses turned into exceptions), then a state
// round trip with rescaling on the memory and fs backends, threads sharing one
// backend, and the asynchronous snapshot phase on a std::thread.
//
// Usage: test_cpp WORKDIR [ignored]

#include "statebackend.h"

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace {

int checks = 0;
int failed = 0;

void check(bool ok, const char *what, int line) {
    ++checks;
    if (!ok) {
        ++failed;
        std::fprintf(stderr, "test_api.cpp:%d: check failed: %s\n", line, what);
    }
}
#define CHECK(cond) check((cond), #cond, __LINE__)

struct Error : std::runtime_error {
    sb_status status;
    Error(sb_status s, const std::string &m) : std::runtime_error(m), status(s) {}
};

std::string last_error() {
    size_t needed = 0;
    sb_last_error_message(nullptr, 0, &needed);
    std::string msg(needed, '\0');
    if (sb_last_error_message(msg.data(), msg.size(), &needed) != SB_OK) {
        return "<unavailable>";
    }
    msg.resize(needed - 1);
    return msg;
}

// Throws unless `s` is SB_OK; returns false for SB_NOT_FOUND when allowed.
bool ok(sb_status s, bool not_found_ok = false) {
    if (s == SB_OK) return true;
    if (s == SB_NOT_FOUND && not_found_ok) return false;
    throw Error(s, std::string(sb_status_name(s)) + ": " + last_error());
}

sb_slice slice(std::string_view s) { return sb_slice{reinterpret_cast<const uint8_t *>(s.data()), s.size()}; }

std::string str(sb_slice s) { return std::string(reinterpret_cast<const char *>(s.data), s.len); }

class Snapshot {
  public:
    explicit Snapshot(sb_snapshot s) : s_(s) {}
    Snapshot(Snapshot &&o) noexcept : s_(std::exchange(o.s_, sb_snapshot{0})) {}
    Snapshot(const Snapshot &) = delete;
    Snapshot &operator=(const Snapshot &) = delete;
    ~Snapshot() { sb_snapshot_free(s_); }
    sb_snapshot_source source() const {
        sb_snapshot_source src;
        ok(sb_snapshot_as_source(s_, &src));
        return src;
    }

  private:
    sb_snapshot s_;
};

class Backend {
  public:
    explicit Backend(const sb_config &c, const std::vector<sb_snapshot_source> &from = {}) {
        ok(sb_backend_open(&c, from.data(), from.size(), &b_));
    }
    Backend(Backend &&o) noexcept : b_(std::exchange(o.b_, sb_backend{0})) {}
    Backend(const Backend &) = delete;
    Backend &operator=(const Backend &) = delete;
    ~Backend() { sb_backend_close(b_); }

    uint32_t state(const char *name, uint32_t kind) {
        uint32_t id = 0;
        ok(sb_register_state(b_, name, kind, sb_slice{nullptr, 0}, &id));
        return id;
    }
    void put(uint32_t s, uint32_t kg, std::string_view k, std::string_view ns, std::string_view v) {
        ok(sb_value_put(b_, s, kg, slice(k), slice(ns), slice(v)));
    }
    // The value, or nullopt-like empty pair; grows the buffer on SB_BUFFER_TOO_SMALL.
    std::pair<bool, std::string> get(uint32_t s, uint32_t kg, std::string_view k, std::string_view ns) {
        std::string buf(4, '\0');
        size_t len = 0;
        for (;;) {
            sb_status st = sb_value_get(b_, s, kg, slice(k), slice(ns),
                                        reinterpret_cast<uint8_t *>(buf.data()), buf.size(), &len);
            if (st == SB_BUFFER_TOO_SMALL) {
                buf.resize(len);
                continue;
            }
            if (!ok(st, true)) return {false, {}};
            buf.resize(len);
            return {true, buf};
        }
    }
    std::vector<std::string> list(uint32_t s, uint32_t kg, std::string_view k, std::string_view ns) {
        size_t len = 0;
        std::vector<uint8_t> buf;
        sb_status st = sb_list_get(b_, s, kg, slice(k), slice(ns), nullptr, 0, &len);
        if (st == SB_NOT_FOUND) return {};
        if (st != SB_BUFFER_TOO_SMALL) ok(st);
        buf.resize(len);
        ok(sb_list_get(b_, s, kg, slice(k), slice(ns), buf.data(), buf.size(), &len));
        std::vector<std::string> out;
        size_t offset = 0;
        sb_slice el;
        while (ok(sb_list_next(sb_slice{buf.data(), len}, &offset, &el), true)) out.push_back(str(el));
        return out;
    }
    uint64_t entries() {
        uint64_t n = 0;
        ok(sb_num_entries(b_, &n));
        return n;
    }
    Snapshot checkpoint(uint64_t id) {
        sb_snapshot s;
        ok(sb_checkpoint(b_, id, &s));
        return Snapshot(s);
    }
    sb_backend raw() const { return b_; }

  private:
    sb_backend b_{0};
};

uint32_t kg_of(uint32_t i) {
    uint32_t kg = 0;
    ok(sb_key_group_for_hash(static_cast<int32_t>(i), 128, &kg));
    return kg;
}

sb_config config(uint32_t kind, const std::string &url, uint32_t subtask, uint32_t parallelism) {
    sb_config c;
    ok(sb_config_default(&c));
    c.backend = kind;
    c.checkpoint_url = kind == SB_BACKEND_MEMORY ? nullptr : url.c_str();
    c.subtask_index = subtask;
    c.parallelism = parallelism;
    return c;
}

void round_trip(uint32_t kind, const std::string &workdir) {
    const std::string url = "file://" + workdir + "/cpp-ckpt-" + std::to_string(kind);
    Backend b(config(kind, url, 0, 1));
    uint32_t v = b.state("v", SB_STATE_VALUE);
    uint32_t l = b.state("l", SB_STATE_LIST);
    for (uint32_t i = 0; i < 300; ++i) {
        std::string k = "key" + std::to_string(i);
        b.put(v, kg_of(i), k, "", std::string(i % 17, 'x') + std::to_string(i));
        ok(sb_list_add(b.raw(), l, kg_of(i), slice(k), slice("n"), slice("e" + std::to_string(i))));
    }
    CHECK(b.entries() == 600);
    CHECK(b.get(v, kg_of(42), "key42", "").second == std::string(42 % 17, 'x') + "42");
    CHECK(!b.get(v, kg_of(42), "key42", "other").first);
    CHECK(b.list(l, kg_of(7), "key7", "n") == std::vector<std::string>{"e7"});

    // Wrong kind: an exception carrying the status and the message.
    try {
        ok(sb_list_add(b.raw(), v, kg_of(1), slice("key1"), slice(""), slice("x")));
        CHECK(false);
    } catch (const Error &e) {
        CHECK(e.status == SB_STATE_ERROR);
        CHECK(std::string(e.what()).find("sb_list_add: ") != std::string::npos);
    }

    Snapshot snap = b.checkpoint(1);
    uint64_t total = 0;
    for (uint32_t i = 0; i < 3; ++i) {
        Backend part(config(kind, url, i, 3), {snap.source()});
        total += part.entries();
        uint32_t start = 0, end = 0;
        ok(sb_key_group_range_for_operator(128, 3, i, &start, &end));
        for (uint32_t k = 0; k < 300; ++k) {
            uint32_t kg = kg_of(k);
            if (kg < start || kg > end) continue;
            CHECK(part.get(v, kg, "key" + std::to_string(k), "").first);
        }
    }
    CHECK(total == 600);
}

void threads(const std::string &workdir) {
    const std::string url = "file://" + workdir + "/cpp-threads";
    Backend b(config(SB_BACKEND_FS, url, 0, 1));
    uint32_t v = b.state("v", SB_STATE_VALUE);
    std::vector<std::thread> workers;
    for (uint32_t t = 0; t < 4; ++t) {
        workers.emplace_back([&b, v, t] {
            for (uint32_t i = t * 500; i < (t + 1) * 500; ++i) {
                b.put(v, kg_of(i), "k" + std::to_string(i), "", "v1");
            }
        });
    }
    for (auto &w : workers) w.join();
    CHECK(b.entries() == 2000);

    // Asynchronous phase on a std::thread while this thread overwrites everything.
    sb_pending_snapshot pending;
    ok(sb_snapshot_sync(b.raw(), 9, &pending));
    sb_snapshot done{0};
    sb_status write_status = SB_PANIC;
    std::thread writer([&] { write_status = sb_snapshot_write(pending, &done); });
    for (uint32_t i = 0; i < 2000; ++i) b.put(v, kg_of(i), "k" + std::to_string(i), "", "v2");
    writer.join();
    CHECK(write_status == SB_OK);
    Snapshot snap(done);
    Backend restored(config(SB_BACKEND_FS, url, 0, 1), {snap.source()});
    CHECK(restored.get(v, kg_of(1999), "k1999", "").second == "v1");
    CHECK(b.get(v, kg_of(1999), "k1999", "").second == "v2");
}

}  // namespace

int main(int argc, char **argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s WORKDIR\n", argv[0]);
        return 2;
    }
    const std::string workdir = argv[1];
    try {
        round_trip(SB_BACKEND_MEMORY, workdir);
        round_trip(SB_BACKEND_FS, workdir);
        threads(workdir);
    } catch (const std::exception &e) {
        std::fprintf(stderr, "unexpected exception: %s\n", e.what());
        ++failed;
    }
    std::printf("test_cpp: %d checks, %d failed\n", checks, failed);
    if (failed == 0) std::printf("test_cpp: ALL PASSED\n");
    return failed == 0 ? 0 : 1;
}
