/* make_embed_models.cpp - test fixtures for embed-torch and token-exact
 * chunking, made at test time: tiny TorchScript encoders compiled from
 * source by libtorch (no Python, no model files in the repository). The
 * SentencePiece fixtures are make_spm.cpp's (a program of its own: libtorch
 * and libsentencepiece each bring a protobuf, and do not share a process).
 *
 *   embed-make-model DIR                 every model, as DIR/NAME.pt
 *
 * The encoders answer a hidden state whose values the tests compute on
 * their own: for token id i at any position, dimension d (0..7),
 *   sin((i + 1) * (d + 1) * 0.37) + 100 * token_type_id
 * so mean pooling, [CLS] pooling and padding can be checked numerically.
 *   sin       forward(input_ids, attention_mask, token_type_ids) ->
 *             (last_hidden_state, pooler_output): a tuple, as Hugging Face
 *             models traced with return_dict=False answer
 *   sin2      forward(input_ids, attention_mask) -> {"last_hidden_state": ...}
 *   sin-oom   `sin`, but a batch of more than 2 texts raises "CUDA out of
 *             memory", as a GPU that is too small would
 *   bad       answers a number, not a hidden state
 *
 *   embed-make-model --bench OUT.pt      for bench/embed_torch.sh: a BERT
 *             encoder of all-MiniLM-L6-v2's shape (vocabulary 30522, 6 layers,
 *             hidden 384, 12 heads, feed-forward 1536) with fixed random
 *             weights: the work of the real model, not its answers
 */
#include <torch/script.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

namespace {

const char *const hidden_src = R"TS(
def hidden(self, input_ids: Tensor, token_type_ids: Tensor) -> Tensor:
    d = (torch.arange(8, device=input_ids.device) + 1).float() * 0.37
    return torch.sin((input_ids.float() + 1.0).unsqueeze(-1) * d) + token_type_ids.float().unsqueeze(-1) * 100.0
)TS";

const char *const sin_src = R"TS(
def forward(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor) -> Tuple[Tensor, Tensor]:
    h = self.hidden(input_ids, token_type_ids)
    return h, h[:, 0]
)TS";

const char *const sin2_src = R"TS(
def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Dict[str, Tensor]:
    return {"last_hidden_state": self.hidden(input_ids, torch.zeros_like(input_ids))}
)TS";

const char *const oom_src = R"TS(
def forward(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor) -> Tuple[Tensor, Tensor]:
    assert input_ids.size(0) <= 2, "CUDA out of memory (test model: batches above 2 do not fit)"
    h = self.hidden(input_ids, token_type_ids)
    return h, h[:, 0]
)TS";

const char *const bad_src = R"TS(
def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
    return input_ids.float().sum()
)TS";

const char *const bench_src = R"TS(
def layer(self, x: Tensor, mask: Tensor, i: int) -> Tensor:
    b = x.size(0)
    t = x.size(1)
    h = x.size(2)
    nh = 12
    d = h // nh
    q = torch.matmul(x, self.wq[i]).view(b, t, nh, d).transpose(1, 2)
    k = torch.matmul(x, self.wk[i]).view(b, t, nh, d).transpose(1, 2)
    v = torch.matmul(x, self.wv[i]).view(b, t, nh, d).transpose(1, 2)
    a = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) / (d ** 0.5) + mask, dim=-1)
    o = torch.matmul(a, v).transpose(1, 2).reshape(b, t, h)
    x = torch.layer_norm(x + torch.matmul(o, self.wo[i]), [h])
    f = torch.matmul(torch.gelu(torch.matmul(x, self.w1[i])), self.w2[i])
    return torch.layer_norm(x + f, [h])

def forward(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor) -> Tuple[Tensor, Tensor]:
    x = torch.layer_norm(self.emb[input_ids] + self.pos[: input_ids.size(1)], [self.emb.size(1)])
    mask = (1.0 - attention_mask.float()).unsqueeze(1).unsqueeze(1) * -10000.0
    for i in range(6):
        x = self.layer(x, mask, i)
    return x, x[:, 0]
)TS";

int make_bench(const std::string &path) {
    try {
        torch::manual_seed(7);
        torch::jit::Module m("__torch__.SluiceEmbedBench");
        const int64_t v = 30522, h = 384, f = 1536, l = 6;
        m.register_buffer("emb", torch::randn({v, h}) * 0.05);
        m.register_buffer("pos", torch::randn({512, h}) * 0.05);
        for (const char *w : {"wq", "wk", "wv", "wo"})
            m.register_buffer(w, torch::randn({l, h, h}) / std::sqrt(h));
        m.register_buffer("w1", torch::randn({l, h, f}) / std::sqrt(h));
        m.register_buffer("w2", torch::randn({l, f, h}) / std::sqrt(f));
        m.define(bench_src);
        m.save(path);
    } catch (const std::exception &e) {
        std::fprintf(stderr, "embed-make-model --bench: %s\n", e.what());
        return 1;
    }
    return 0;
}

int make(const std::string &dir, const char *name, const char *src, bool hidden) {
    try {
        torch::jit::Module m("__torch__.SluiceEmbedTest");
        if (hidden) m.define(hidden_src);
        m.define(src);
        m.save(dir + "/" + name + ".pt");
    } catch (const std::exception &e) {
        std::fprintf(stderr, "embed-make-model %s: %s\n", name, e.what());
        return 1;
    }
    return 0;
}

} // namespace

int main(int argc, char **argv) {
    if (argc == 3 && std::strcmp(argv[1], "--bench") == 0) return make_bench(argv[2]);
    if (argc != 2) {
        std::fprintf(stderr, "usage: embed-make-model DIR\n");
        return 2;
    }
    return make(argv[1], "sin", sin_src, true) || make(argv[1], "sin2", sin2_src, true) ||
           make(argv[1], "sin-oom", oom_src, true) || make(argv[1], "bad", bad_src, false);
}
