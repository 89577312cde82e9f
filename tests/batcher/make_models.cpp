/* make_models.cpp - writes tiny TorchScript models for the layout-torch
 * tests and the batcher benchmark, compiled from TorchScript source by
 * libtorch itself (torch::jit::Module::define, then save): no Python, no
 * checked-in model files.
 *
 *   torch-make-model NAME OUT.pt
 *   torch-make-model --all DIR        (every model, as DIR/NAME.pt)
 *
 * The models follow the layout-torch contract (plugins/layout-torch/README.md):
 * input [N,C,H,W] floats in 0..1, output boxes [N,K,4] (normalised x0,y0,x1,y1),
 * scores [N,K] and optionally labels [N,K].
 *
 *   rects       finds dark rectangles: the input is cut into an 8x8 grid and
 *               each cell answers the tight box around its dark pixels (gray
 *               below 0.5), scored by how much of that box is dark (1 for a
 *               solid rectangle, 0 for a white cell); label 1 when the box
 *               is wider than tall, else 0. A dict {boxes, scores, labels}.
 *   rects-tuple the same as a tuple (boxes, scores): no labels.
 *   rects-oom   `rects`, but a batch of more than 2 images raises "CUDA out of
 *               memory", as a GPU that is too small would.
 *   bad-output  answers one tensor: breaks the contract on purpose.
 *   boxes       answers the same detections for every image, whatever it
 *               shows: the boxes given on the command line
 *               (torch-make-model boxes OUT.pt "x0,y0,x1,y1,label;..."; x and y
 *               normalised to the input), each scored 1. For tests of what
 *               reads the regions (the chunker), where the boxes must be known.
 *   conv        for the benchmark: three stride-2 3x3 convolutions (3->16->32
 *               ->32 channels, fixed random weights), pooled to an 8x8 grid,
 *               a 1x1 convolution scoring each cell; boxes are the cells.
 */
#include <torch/script.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

namespace {

/* The grid detector, shared by the rects models. H and W must divide by 8. */
const char *const detect_src = R"TS(
def detect(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    n = x.size(0)
    h = x.size(2)
    w = x.size(3)
    g = 8
    ch = h // g
    cw = w // g
    dark = (x.mean(dim=1) < 0.5).float()
    cells = dark.view(n, g, ch, g, cw).permute(0, 1, 3, 2, 4)
    rows = cells.amax(dim=4)
    cols = cells.amax(dim=3)
    ry = torch.arange(ch, device=x.device).float()
    rx = torch.arange(cw, device=x.device).float()
    y0 = (ry + (1.0 - rows) * 100000.0).amin(dim=3)
    y1 = ((ry + 1.0) * rows).amax(dim=3)
    x0 = (rx + (1.0 - cols) * 100000.0).amin(dim=3)
    x1 = ((rx + 1.0) * cols).amax(dim=3)
    has = rows.amax(dim=3)
    area = torch.clamp((y1 - y0) * (x1 - x0), min=1.0)
    score = has * cells.sum(dim=[3, 4]) / area
    oy = (torch.arange(g, device=x.device) * ch).float().view(1, g, 1)
    ox = (torch.arange(g, device=x.device) * cw).float().view(1, 1, g)
    bx0 = has * (ox + x0) / w
    by0 = has * (oy + y0) / h
    bx1 = has * (ox + x1) / w
    by1 = has * (oy + y1) / h
    boxes = torch.stack([bx0, by0, bx1, by1], dim=-1).view(n, g * g, 4)
    wide = ((bx1 - bx0) * w > (by1 - by0) * h).long().view(n, g * g)
    return boxes, score.view(n, g * g), wide
)TS";

const char *const rects_src = R"TS(
def forward(self, x: Tensor) -> Dict[str, Tensor]:
    boxes, scores, labels = self.detect(x)
    return {"boxes": boxes, "scores": scores, "labels": labels}
)TS";

const char *const tuple_src = R"TS(
def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
    boxes, scores, labels = self.detect(x)
    return boxes, scores
)TS";

const char *const oom_src = R"TS(
def forward(self, x: Tensor) -> Dict[str, Tensor]:
    assert x.size(0) <= 2, "CUDA out of memory (test model: batches above 2 do not fit)"
    boxes, scores, labels = self.detect(x)
    return {"boxes": boxes, "scores": scores, "labels": labels}
)TS";

const char *const boxes_src = R"TS(
def forward(self, x: Tensor) -> Dict[str, Tensor]:
    n = x.size(0)
    k = self.fixed_boxes.size(0)
    boxes = self.fixed_boxes.to(x.device).view(1, k, 4).expand(n, k, 4).contiguous()
    labels = self.fixed_labels.to(x.device).view(1, k).expand(n, k).contiguous()
    scores = torch.ones([n, k], device=x.device)
    return {"boxes": boxes, "scores": scores, "labels": labels}
)TS";

/* "x0,y0,x1,y1,label;..." into the boxes model's buffers; false when malformed. */
bool boxes_buffers(torch::jit::Module &m, const std::string &spec) {
    std::vector<float> b;
    std::vector<int64_t> l;
    size_t pos = 0;
    while (pos < spec.size()) {
        size_t end = spec.find(';', pos);
        if (end == std::string::npos) end = spec.size();
        float v[4];
        long label;
        if (std::sscanf(spec.substr(pos, end - pos).c_str(), "%f,%f,%f,%f,%ld", &v[0], &v[1], &v[2], &v[3],
                        &label) != 5)
            return false;
        b.insert(b.end(), v, v + 4);
        l.push_back(label);
        pos = end + 1;
    }
    if (l.empty()) return false;
    auto k = static_cast<int64_t>(l.size());
    m.register_buffer("fixed_boxes", torch::tensor(b).view({k, 4}));
    m.register_buffer("fixed_labels", torch::tensor(l, torch::kLong));
    return true;
}

const char *const bad_src = R"TS(
def forward(self, x: Tensor) -> Tensor:
    return x.mean()
)TS";

const char *const conv_src = R"TS(
def forward(self, x: Tensor) -> Dict[str, Tensor]:
    y = torch.relu(torch.conv2d(x, self.w1, self.b1, [2, 2], [1, 1]))
    y = torch.relu(torch.conv2d(y, self.w2, self.b2, [2, 2], [1, 1]))
    y = torch.relu(torch.conv2d(y, self.w3, self.b3, [2, 2], [1, 1]))
    n = y.size(0)
    c = y.size(1)
    g = 8
    y = y.view(n, c, g, y.size(2) // g, g, y.size(3) // g).mean(dim=[3, 5])
    s = torch.sigmoid(torch.conv2d(y, self.w4, self.b4)).view(n, g * g)
    i = torch.arange(g * g, device=x.device)
    cx = (i % g).float() / g
    cy = (i // g).float() / g
    cell = torch.stack([cx, cy, cx + 1.0 / g, cy + 1.0 / g], dim=-1)
    boxes = cell.view(1, g * g, 4).expand(n, g * g, 4).contiguous()
    labels = torch.zeros([n, g * g], device=x.device).long()
    return {"boxes": boxes, "scores": s, "labels": labels}
)TS";

void conv_weights(torch::jit::Module &m) {
    torch::manual_seed(7);
    auto layer = [&](const std::string &k, int64_t out, int64_t in, int64_t ks) {
        double scale = 1.0 / std::sqrt(static_cast<double>(in * ks * ks));
        m.register_buffer("w" + k, torch::randn({out, in, ks, ks}) * scale);
        m.register_buffer("b" + k, torch::zeros({out}));
    };
    layer("1", 16, 3, 3);
    layer("2", 32, 16, 3);
    layer("3", 32, 32, 3);
    layer("4", 1, 32, 1);
}

int usage() {
    std::fprintf(stderr, "usage: torch-make-model rects|rects-tuple|rects-oom|bad-output|conv OUT.pt\n"
                         "       torch-make-model boxes OUT.pt \"x0,y0,x1,y1,label;...\"\n"
                         "       torch-make-model --all DIR   (every model, as DIR/NAME.pt)\n");
    return 2;
}

const char *const names[] = {"rects", "rects-tuple", "rects-oom", "bad-output", "conv"};

/* 0, 1 when libtorch failed, 2 for an unknown name. */
int make(const std::string &name, const std::string &path, const std::string &spec = "") {
    try {
        torch::jit::Module m("__torch__.SluiceTest");
        if (name == "rects" || name == "rects-tuple" || name == "rects-oom") {
            m.define(detect_src);
            m.define(name == "rects" ? rects_src : name == "rects-tuple" ? tuple_src : oom_src);
        } else if (name == "boxes") {
            if (!boxes_buffers(m, spec)) return usage();
            m.define(boxes_src);
        } else if (name == "bad-output") {
            m.define(bad_src);
        } else if (name == "conv") {
            conv_weights(m);
            m.define(conv_src);
        } else {
            return usage();
        }
        m.save(path);
    } catch (const std::exception &e) {
        std::fprintf(stderr, "torch-make-model %s: %s\n", name.c_str(), e.what());
        return 1;
    }
    return 0;
}

} // namespace

int main(int argc, char **argv) {
    if (argc == 4 && std::strcmp(argv[1], "boxes") == 0) return make(argv[1], argv[2], argv[3]);
    if (argc != 3) return usage();
    if (std::strcmp(argv[1], "--all") != 0) return make(argv[1], argv[2]);
    for (const char *name : names) {
        int rc = make(name, std::string(argv[2]) + "/" + name + ".pt");
        if (rc) return rc;
    }
    return 0;
}
