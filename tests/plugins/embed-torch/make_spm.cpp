/* make_spm.cpp - SentencePiece fixtures for the tokenizer tests, made at
 * test time by libsentencepiece itself:
 *
 *   spm-make-model --spm TEXT PREFIX       trains PREFIX.model (unigram, 300 pieces)
 *   spm-make-model --spm-ids MODEL TEXT    prints the library's own ids, one a line
 */
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cstdio>
#include <cstring>
#include <string>

int main(int argc, char **argv) {
    if (argc == 4 && std::strcmp(argv[1], "--spm") == 0) {
        std::string args = std::string("--input=") + argv[2] + " --model_prefix=" + argv[3] +
                           " --vocab_size=300 --model_type=unigram --character_coverage=1.0"
                           " --minloglevel=2 --num_threads=1";
        auto st = sentencepiece::SentencePieceTrainer::Train(args);
        if (!st.ok()) {
            std::fprintf(stderr, "spm-make-model --spm: %s\n", st.ToString().c_str());
            return 1;
        }
        return 0;
    }
    if (argc == 4 && std::strcmp(argv[1], "--spm-ids") == 0) {
        sentencepiece::SentencePieceProcessor sp;
        if (!sp.Load(argv[2]).ok()) return 1;
        for (int id : sp.EncodeAsIds(argv[3])) std::printf("%d\n", id);
        return 0;
    }
    std::fprintf(stderr, "usage: spm-make-model --spm TEXT PREFIX | --spm-ids MODEL TEXT\n");
    return 2;
}
