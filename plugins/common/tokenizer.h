/* tokenizer.h - the tokenizers of local embedding models, shared by
 * embed-torch (which feeds the ids to the model) and chunk-text (which
 * counts them, so that no chunk exceeds the model's window).
 *
 * Two kinds, chosen by what is loaded:
 *   - WordPiece from a BERT `vocab.txt` (one token a line, the line number
 *     its id), after BERT's basic tokenization: control characters dropped,
 *     whitespace split, optional lowercasing and accent stripping (NFD,
 *     combining marks removed), punctuation and CJK ideographs split into
 *     tokens of their own; a word the vocabulary cannot spell, or longer
 *     than 100 characters, is [UNK]. This is what Hugging Face's
 *     BertTokenizer does (all-MiniLM-L6-v2, bge-small, e5-small, gte-small).
 *   - SentencePiece from a `.model` file, through libsentencepiece.
 *
 * Every token keeps the byte range of the input it came from, so a caller
 * can count tokens and also cut a text after its k-th token. Unicode
 * (character classes, case, NFD) comes from ICU. A tokenizer is read-only
 * after it is opened: any number of threads may encode with it at once.
 */
#ifndef SL_TOKENIZER_H
#define SL_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tok tok;

/* One encoded text: ids and, for each, the bytes [begin, end) of the input
 * it covers. Grows as needed; tok_ids_free releases it. */
typedef struct tok_ids {
    int32_t *id;
    uint32_t *begin, *end;
    size_t n, cap;
} tok_ids;

/* Opens a WordPiece tokenizer from vocab.txt. 0, or -1 with a message in
 * err (naming the file and the line). */
int tok_open_wordpiece(const char *vocab, bool lowercase, bool strip_accents, tok **out, char *err,
                       size_t errlen);
/* Opens a SentencePiece model (.model). 0, or -1 with a message in err. */
int tok_open_spm(const char *model, tok **out, char *err, size_t errlen);
void tok_free(tok *t);

/* Appends the tokens of text[0, len) (no special tokens) to out; stops
 * once out holds `limit` tokens (0: no limit). 0, or -1 out of memory. */
int tok_encode(const tok *t, const char *text, size_t len, size_t limit, tok_ids *out);
/* Tokens in text[0, len), no special tokens; (size_t)-1 out of memory. */
size_t tok_count(const tok *t, const char *text, size_t len);
void tok_ids_clear(tok_ids *ids);
void tok_ids_free(tok_ids *ids);

/* The ids a model input is framed with: cls before, sep after ([CLS] and
 * [SEP] for WordPiece; [CLS]/[SEP], else <s>/</s> for SentencePiece; -1
 * when the vocabulary has none), pad for padding (0 when it has none) and
 * unk. Tokens added around a text: (cls >= 0) + (sep >= 0). */
int32_t tok_cls(const tok *t);
int32_t tok_sep(const tok *t);
int32_t tok_pad(const tok *t);
int32_t tok_unk(const tok *t);
size_t tok_specials(const tok *t);
size_t tok_vocab_size(const tok *t);
/* "wordpiece" or "sentencepiece" */
const char *tok_kind(const tok *t);
/* The id of a token string, or -1. */
int32_t tok_id(const tok *t, const char *piece);

#ifdef __cplusplus
}
#endif
#endif
