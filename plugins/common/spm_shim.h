/* spm_shim.h - the C face of libsentencepiece (C++), for tokenizer.c.
 * No C++ exception crosses it: every function catches and answers -1 with
 * a message. A loaded model is read-only: any thread may encode with it. */
#ifndef SL_SPM_SHIM_H
#define SL_SPM_SHIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct spm_model spm_model;

int spm_open(const char *path, spm_model **out, char *err, size_t errlen);
void spm_free(spm_model *m);
/* Calls push(arg, id, begin, end) for each piece of text[0, len), with the
 * input bytes it covers; 0, or -1 when push failed or the library threw. */
int spm_encode(const spm_model *m, const char *text, size_t len,
               int (*push)(void *arg, int32_t id, size_t begin, size_t end), void *arg);
/* A piece's id, or -1 when it is not in the model (or is the unknown piece). */
int32_t spm_piece_id(const spm_model *m, const char *piece);
int32_t spm_bos(const spm_model *m);
int32_t spm_eos(const spm_model *m);
int32_t spm_pad(const spm_model *m);
int32_t spm_unk(const spm_model *m);
size_t spm_size(const spm_model *m);

/* libsentencepiece carries copies of protobuf's internals, and libtorch
 * links libprotobuf: in one symbol scope they bind to each other's and
 * crash at load. So the shim is a module of its own (sluice-spm.shim,
 * next to the plugins), opened by tokenizer.c with RTLD_LOCAL |
 * RTLD_DEEPBIND only when a SentencePiece model is used; this table is its
 * one entry point. */
typedef struct spm_api {
    int (*open)(const char *path, spm_model **out, char *err, size_t errlen);
    void (*free)(spm_model *m);
    int (*encode)(const spm_model *m, const char *text, size_t len,
                  int (*push)(void *arg, int32_t id, size_t begin, size_t end), void *arg);
    int32_t (*piece_id)(const spm_model *m, const char *piece);
    int32_t (*bos)(const spm_model *m);
    int32_t (*eos)(const spm_model *m);
    int32_t (*pad)(const spm_model *m);
    int32_t (*unk)(const spm_model *m);
    size_t (*size)(const spm_model *m);
} spm_api;
const spm_api *sluice_spm_api(void);

#ifdef __cplusplus
}
#endif
#endif
