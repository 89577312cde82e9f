/* spm_shim.cpp - spm_shim.h over libsentencepiece: load, encode with byte
 * offsets (the immutable proto's begin/end), special ids. */
#include "spm_shim.h"

#include <sentencepiece_processor.h>

#include <cstdio>
#include <exception>
#include <memory>
#include <string>

struct spm_model {
    sentencepiece::SentencePieceProcessor sp;
};

extern "C" {

int spm_open(const char *path, spm_model **out, char *err, size_t errlen) {
    *out = nullptr;
    try {
        auto m = std::make_unique<spm_model>();
        auto st = m->sp.Load(path);
        if (!st.ok()) {
            std::snprintf(err, errlen, "cannot load SentencePiece model %s: %s", path, st.ToString().c_str());
            return -1;
        }
        *out = m.release();
        return 0;
    } catch (const std::exception &e) {
        std::snprintf(err, errlen, "cannot load SentencePiece model %s: %s", path, e.what());
    } catch (...) {
        std::snprintf(err, errlen, "cannot load SentencePiece model %s", path);
    }
    return -1;
}

void spm_free(spm_model *m) { delete m; }

int spm_encode(const spm_model *m, const char *text, size_t len,
               int (*push)(void *arg, int32_t id, size_t begin, size_t end), void *arg) {
    try {
        auto spt = m->sp.EncodeAsImmutableProto(absl::string_view(text, len));
        for (const auto &p : spt.pieces())
            if (push(arg, static_cast<int32_t>(p.id()), p.begin(), p.end())) return -1;
        return 0;
    } catch (...) {
        return -1;
    }
}

int32_t spm_piece_id(const spm_model *m, const char *piece) {
    try {
        int id = m->sp.PieceToId(piece);
        return id == m->sp.unk_id() && std::string(piece) != m->sp.IdToPiece(id) ? -1 : id;
    } catch (...) {
        return -1;
    }
}

int32_t spm_bos(const spm_model *m) { return m->sp.bos_id(); }
int32_t spm_eos(const spm_model *m) { return m->sp.eos_id(); }
int32_t spm_pad(const spm_model *m) { return m->sp.pad_id(); }
int32_t spm_unk(const spm_model *m) { return m->sp.unk_id(); }
size_t spm_size(const spm_model *m) { return static_cast<size_t>(m->sp.GetPieceSize()); }

__attribute__((visibility("default"))) const spm_api *sluice_spm_api(void) {
    static const spm_api api = {spm_open, spm_free, spm_encode, spm_piece_id, spm_bos,
                                spm_eos,  spm_pad,  spm_unk,    spm_size};
    return &api;
}

} // extern "C"
