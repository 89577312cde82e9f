// hnsw_shim.cpp - the C API of hnsw_shim.h over hnswlib's HierarchicalNSW.
//
// Every entry point catches everything: an exception never reaches the C
// caller. Saving and loading are ours (see the header): hnswlib 0.6's
// saveIndex does not check its writes and its loadIndex trusts what it
// reads, so a damaged file could crash it. Ours writes the same fields
// through a running XXH64, and reads them back into an index built by
// hnswlib's own constructor (which sets up its locks and pools), checking
// the checksum, every size, every level and every link on the way.
#include "hnsw_shim.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

// hnswlib's own SSE code prefetches one link past the end of a full link
// list, reading 4 bytes beyond a malloc'd block (ASan reports it): it is
// left out, and the inner product below, which the compiler vectorises,
// stands in for its SIMD distance.
#define NO_MANUAL_VECTORIZATION
#include <hnswlib/hnswlib.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace {

thread_local std::string last_error;

int fail(int code, const std::string &msg) {
    last_error = msg;
    return code;
}

// What a file starts with; the version changes with the layout.
const char file_magic[8] = {'S', 'L', 'H', 'N', 'S', 'W', '\n', '\0'};
const uint32_t file_version = 1;
const size_t max_meta = 4096;
const int max_level = 64; // a level is -ln(U)/ln(M): 64 is unreachable for M >= 2

struct corrupt : std::runtime_error {
    using std::runtime_error::runtime_error;
};
struct io_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// 1 - <a, b> of two unit vectors: eight running sums, so the loop
// vectorises without -ffast-math.
float ip_distance(const void *pa, const void *pb, const void *param) {
    const float *a = static_cast<const float *>(pa), *b = static_cast<const float *>(pb);
    const size_t n = *static_cast<const size_t *>(param);
    float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) s[j] += a[i + j] * b[i + j];
    float t = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    for (; i < n; i++) t += a[i] * b[i];
    return 1.0f - t;
}

class ip_space : public hnswlib::SpaceInterface<float> {
    size_t dim_;

  public:
    explicit ip_space(size_t dim) : dim_(dim) {}
    size_t get_data_size() override { return dim_ * sizeof(float); }
    hnswlib::DISTFUNC<float> get_dist_func() override { return ip_distance; }
    void *get_dist_func_param() override { return &dim_; }
};

} // namespace

struct sl_hnsw {
    uint32_t dim;
    ip_space space;
    std::unique_ptr<hnswlib::HierarchicalNSW<float>> g;
    explicit sl_hnsw(uint32_t d) : dim(d), space(d) {}
};

namespace {

using graph = hnswlib::HierarchicalNSW<float>;

// A copy of v scaled to length 1 (a zero vector stays zero), in a buffer
// of this thread's.
const float *unit(const float *v, uint32_t dim) {
    thread_local std::vector<float> buf;
    buf.resize(dim);
    double ss = 0;
    for (uint32_t i = 0; i < dim; i++) ss += (double)v[i] * v[i];
    double inv = ss > 0 ? 1.0 / std::sqrt(ss) : 0.0;
    for (uint32_t i = 0; i < dim; i++) buf[i] = (float)(v[i] * inv);
    return buf.data();
}

// Room for at least `want` points: doubling, so n adds cost O(n).
void reserve(graph &g, size_t want) {
    if (want <= g.max_elements_) return;
    size_t cap = g.max_elements_ < 1024 ? 1024 : g.max_elements_;
    while (cap < want) cap *= 2;
    g.resizeIndex(cap);
}

// A FILE that hashes what goes through it.
struct hashed_file {
    FILE *f;
    XXH64_state_t *st;
    void write(const void *p, size_t n) {
        if (n && fwrite(p, 1, n, f) != n) throw io_error(std::string("write failed: ") + strerror(errno));
        XXH64_update(st, p, n);
    }
    void read(void *p, size_t n) {
        if (n && fread(p, 1, n, f) != n) throw corrupt(ferror(f) ? "read failed" : "the file is truncated");
        XXH64_update(st, p, n);
    }
    template <typename T> void put(const T &v) { write(&v, sizeof v); }
    template <typename T> T get() {
        T v;
        read(&v, sizeof v);
        return v;
    }
};

int catch_all(const char *what) {
    try {
        throw;
    } catch (const corrupt &e) {
        return fail(SL_HNSW_ECORRUPT, e.what());
    } catch (const io_error &e) {
        return fail(SL_HNSW_EIO, e.what());
    } catch (const std::bad_alloc &) {
        return fail(SL_HNSW_ENOMEM, std::string(what) + ": out of memory");
    } catch (const std::exception &e) {
        std::string m = e.what();
        return fail(m.find("Not enough memory") != std::string::npos ? SL_HNSW_ENOMEM : SL_HNSW_ERROR,
                    std::string(what) + ": " + m);
    } catch (...) {
        return fail(SL_HNSW_ERROR, std::string(what) + ": unknown failure");
    }
}

} // namespace

extern "C" {

const char *sl_hnsw_last_error(void) { return last_error.c_str(); }

int sl_hnsw_new(uint32_t dim, size_t m, size_t ef_construction, sl_hnsw **out) {
    last_error.clear();
    if (!out || dim == 0 || m < 2 || m > 256 || ef_construction == 0)
        return fail(SL_HNSW_EINVAL, "bad arguments");
    *out = nullptr;
    try {
        auto h = std::make_unique<sl_hnsw>(dim);
        h->g = std::make_unique<graph>(&h->space, 1024, m, ef_construction);
        *out = h.release();
        return SL_HNSW_OK;
    } catch (...) {
        return catch_all("new index");
    }
}

void sl_hnsw_free(sl_hnsw *h) { delete h; }

uint32_t sl_hnsw_dim(const sl_hnsw *h) { return h ? h->dim : 0; }

size_t sl_hnsw_live(const sl_hnsw *h) { return h ? h->g->cur_element_count - h->g->num_deleted_ : 0; }

size_t sl_hnsw_removed(const sl_hnsw *h) { return h ? h->g->num_deleted_ : 0; }

int sl_hnsw_add(sl_hnsw *h, int64_t label, const float *v) {
    last_error.clear();
    if (!h || !v || label < 0) return fail(SL_HNSW_EINVAL, "bad arguments");
    try {
        graph &g = *h->g;
        if (g.label_lookup_.find((hnswlib::labeltype)label) == g.label_lookup_.end())
            reserve(g, g.cur_element_count + 1);
        g.addPoint(unit(v, h->dim), (hnswlib::labeltype)label);
        return SL_HNSW_OK;
    } catch (...) {
        return catch_all("add");
    }
}

int sl_hnsw_add_batch(sl_hnsw *h, const int64_t *labels, const float *vecs, size_t n, unsigned threads) {
    last_error.clear();
    if (!h || (n && (!labels || !vecs))) return fail(SL_HNSW_EINVAL, "bad arguments");
    for (size_t i = 0; i < n; i++)
        if (labels[i] < 0) return fail(SL_HNSW_EINVAL, "bad arguments");
    try {
        graph &g = *h->g;
        reserve(g, g.cur_element_count + n); // before any thread starts: resizing is not thread-safe
        size_t i = 0;
        if (g.cur_element_count == 0 && n) { // the entry point, alone
            g.addPoint(unit(vecs, h->dim), (hnswlib::labeltype)labels[0]);
            i = 1;
        }
        if (threads < 1) threads = 1;
        if (threads > 64) threads = 64;
        if (threads == 1 || n - i < 2 * (size_t)threads) {
            for (; i < n; i++) g.addPoint(unit(vecs + i * h->dim, h->dim), (hnswlib::labeltype)labels[i]);
            return SL_HNSW_OK;
        }
        // each thread takes every threads-th point; the first failure is kept
        std::vector<std::thread> pool;
        std::vector<std::string> errs(threads);
        std::vector<int> codes(threads, SL_HNSW_OK);
        const size_t first = i;
        for (unsigned t = 0; t < threads; t++) {
            pool.emplace_back([&, t] {
                try {
                    for (size_t j = first + t; j < n; j += threads)
                        g.addPoint(unit(vecs + j * h->dim, h->dim), (hnswlib::labeltype)labels[j]);
                } catch (...) {
                    codes[t] = catch_all("add");
                    errs[t] = last_error;
                }
            });
        }
        for (auto &th : pool) th.join();
        for (unsigned t = 0; t < threads; t++)
            if (codes[t] != SL_HNSW_OK) return fail(codes[t], errs[t]);
        return SL_HNSW_OK;
    } catch (...) {
        return catch_all("add");
    }
}

int sl_hnsw_remove(sl_hnsw *h, int64_t label) {
    last_error.clear();
    if (!h || label < 0) return fail(SL_HNSW_EINVAL, "bad arguments");
    try {
        graph &g = *h->g;
        auto it = g.label_lookup_.find((hnswlib::labeltype)label);
        if (it == g.label_lookup_.end() || g.isMarkedDeleted(it->second)) return 0;
        g.markDeletedInternal(it->second);
        return 1;
    } catch (...) {
        return catch_all("remove");
    }
}

int sl_hnsw_search(const sl_hnsw *h, const float *q, size_t k, size_t ef, int64_t *labels, float *sims,
                   size_t *n) {
    last_error.clear();
    if (!h || !q || !labels || !sims || !n) return fail(SL_HNSW_EINVAL, "bad arguments");
    *n = 0;
    if (k == 0) return SL_HNSW_OK;
    try {
        // searchKnn keeps max(ef_, wanted) candidates; ef_ stays at its
        // default, so asking for `ef` here is an ef search that threads can
        // run at once without setting shared state.
        size_t want = ef > k ? ef : k;
        auto top = h->g->searchKnn(unit(q, h->dim), want);
        while (top.size() > k) top.pop();
        size_t got = top.size();
        for (size_t i = got; i-- > 0;) { // the queue pops the farthest first
            labels[i] = (int64_t)top.top().second;
            sims[i] = 1.0f - top.top().first;
            top.pop();
        }
        *n = got;
        return SL_HNSW_OK;
    } catch (...) {
        return catch_all("search");
    }
}

int sl_hnsw_save(const sl_hnsw *h, const char *path, const void *meta, size_t metalen) {
    last_error.clear();
    if (!h || !path || (metalen && !meta) || metalen > max_meta) return fail(SL_HNSW_EINVAL, "bad arguments");
    FILE *f = fopen(path, "wb");
    if (!f) return fail(SL_HNSW_EIO, std::string("cannot create ") + path + ": " + strerror(errno));
    XXH64_state_t *st = XXH64_createState();
    int rc = SL_HNSW_OK;
    try {
        if (!st) throw std::bad_alloc();
        XXH64_reset(st, 0);
        hashed_file w{f, st};
        const graph &g = *h->g;
        w.write(file_magic, sizeof file_magic);
        w.put<uint32_t>(file_version);
        w.put<uint32_t>(h->dim);
        w.put<uint64_t>(metalen);
        w.write(meta, metalen);
        w.put<uint64_t>(g.cur_element_count);
        w.put<uint64_t>(g.size_data_per_element_);
        w.put<uint64_t>(g.M_);
        w.put<uint64_t>(g.ef_construction_);
        w.put<int32_t>(g.maxlevel_);
        w.put<uint32_t>(g.enterpoint_node_);
        w.write(g.data_level0_memory_, g.cur_element_count * g.size_data_per_element_);
        for (size_t i = 0; i < g.cur_element_count; i++) {
            int32_t level = g.element_levels_[i];
            w.put<int32_t>(level);
            if (level > 0) w.write(g.linkLists_[i], g.size_links_per_element_ * (size_t)level);
        }
        uint64_t sum = XXH64_digest(st);
        if (fwrite(&sum, sizeof sum, 1, f) != 1)
            throw io_error(std::string("write failed: ") + strerror(errno));
        if (fflush(f) != 0 || fsync(fileno(f)) != 0)
            throw io_error(std::string("flush failed: ") + strerror(errno));
    } catch (...) {
        rc = catch_all("save");
    }
    XXH64_freeState(st);
    if (fclose(f) != 0 && rc == SL_HNSW_OK)
        rc = fail(SL_HNSW_EIO, std::string("close failed: ") + strerror(errno));
    if (rc != SL_HNSW_OK) last_error = std::string(path) + ": " + last_error;
    return rc;
}

int sl_hnsw_load(const char *path, uint32_t dim, void *meta, size_t metalen, sl_hnsw **out) {
    last_error.clear();
    if (!path || !out || dim == 0 || (metalen && !meta) || metalen > max_meta)
        return fail(SL_HNSW_EINVAL, "bad arguments");
    *out = nullptr;
    FILE *f = fopen(path, "rb");
    if (!f) return fail(SL_HNSW_EIO, std::string("cannot open ") + path + ": " + strerror(errno));
    XXH64_state_t *st = XXH64_createState();
    int rc = SL_HNSW_OK;
    try {
        if (!st) throw std::bad_alloc();
        XXH64_reset(st, 0);
        if (fseeko(f, 0, SEEK_END) != 0) throw io_error("cannot seek");
        const uint64_t size = (uint64_t)ftello(f);
        rewind(f);
        hashed_file r{f, st};
        char magic[sizeof file_magic];
        r.read(magic, sizeof magic);
        if (memcmp(magic, file_magic, sizeof magic) != 0) throw corrupt("not a sluice vector index");
        if (r.get<uint32_t>() != file_version) throw corrupt("an index file of another version");
        uint32_t fdim = r.get<uint32_t>();
        if (fdim != dim)
            throw corrupt("an index of " + std::to_string(fdim) + " dimensions, not " + std::to_string(dim));
        if (r.get<uint64_t>() != metalen) throw corrupt("its header has another size");
        r.read(meta, metalen);
        const uint64_t count = r.get<uint64_t>(), per = r.get<uint64_t>(), m = r.get<uint64_t>(),
                       efc = r.get<uint64_t>();
        const int32_t maxlevel = r.get<int32_t>();
        const uint32_t entry = r.get<uint32_t>();
        if (m < 2 || m > 256 || efc == 0 || efc > 100000) throw corrupt("bad graph parameters");
        // hnswlib's constructor lays out a node for (dim, M): the file must agree
        auto h = std::make_unique<sl_hnsw>(dim);
        h->g = std::make_unique<graph>(&h->space, 1024, m, efc);
        graph &g = *h->g;
        if (per != g.size_data_per_element_) throw corrupt("its node size does not match its dimension");
        if (count > size / per || count >= UINT32_MAX)
            throw corrupt("the file is truncated: it claims more nodes than it holds");
        if (count == 0 ? maxlevel != -1 : (entry >= count || maxlevel < 0 || maxlevel > max_level))
            throw corrupt("bad entry point");
        reserve(g, count);
        r.read(g.data_level0_memory_, count * per);
        g.cur_element_count = count;
        g.enterpoint_node_ = count ? entry : (hnswlib::tableint)-1;
        g.maxlevel_ = maxlevel;
        for (size_t i = 0; i < count; i++) g.linkLists_[i] = nullptr;
        g.element_levels_.assign(g.max_elements_, 0);
        size_t deleted = 0;
        for (size_t i = 0; i < count; i++) {
            int32_t level = r.get<int32_t>();
            if (level < 0 || level > maxlevel) throw corrupt("a node above the top level");
            g.element_levels_[i] = level;
            if (level > 0) {
                size_t bytes = g.size_links_per_element_ * (size_t)level;
                g.linkLists_[i] = (char *)malloc(bytes + 1);
                if (!g.linkLists_[i]) throw std::bad_alloc();
                r.read(g.linkLists_[i], bytes);
            }
        }
        uint64_t want = XXH64_digest(st), sum;
        if (fread(&sum, sizeof sum, 1, f) != 1) throw corrupt("the file is truncated");
        if (fgetc(f) != EOF) throw corrupt("bytes after the end");
        if (sum != want) throw corrupt("checksum mismatch");
        if (count && g.element_levels_[entry] != maxlevel) throw corrupt("bad entry point level");
        // every link inside the graph, every label once
        for (size_t i = 0; i < count; i++) {
            for (int level = 0; level <= g.element_levels_[i]; level++) {
                hnswlib::linklistsizeint *ll = g.get_linklist_at_level((hnswlib::tableint)i, level);
                size_t n = g.getListCount(ll), cap = level ? g.maxM_ : g.maxM0_;
                if (n > cap) throw corrupt("a node with too many links");
                const hnswlib::tableint *to = (const hnswlib::tableint *)(ll + 1);
                for (size_t j = 0; j < n; j++)
                    if (to[j] >= count) throw corrupt("a link out of the graph");
            }
            if (!g.label_lookup_.emplace(g.getExternalLabel((hnswlib::tableint)i), (hnswlib::tableint)i)
                     .second)
                throw corrupt("a label twice");
            if (g.isMarkedDeleted((hnswlib::tableint)i)) deleted++;
        }
        g.num_deleted_ = deleted;
        *out = h.release();
    } catch (...) {
        // the graph's destructor frees link lists up to cur_element_count:
        // the ones not read yet are NULL
        rc = catch_all("load");
    }
    XXH64_freeState(st);
    fclose(f);
    return rc;
}

} // extern "C"
