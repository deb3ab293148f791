/*
 * llama2: a transformer forward pass in the style of llama2.c (RMSNorm,
 * rotary embeddings, multi-head attention with a KV cache, SwiGLU
 * feed-forward, classifier), sampling at temperature 1 from the BOS token.
 * The weights are generated from a seed instead of read from a checkpoint,
 * so nothing is downloaded; the arithmetic is the same as with real weights.
 * Usage: llama2 -d DIM -l LAYERS -a HEADS -v VOCAB -t STEPS.
 *
 * exp, sin and cos come from the portable versions in bench_common.h so
 * that the native and wasm builds produce the same tokens and logits.
 */
#include "bench_common.h"
#include <math.h>

typedef struct {
    int dim, hidden, layers, heads, head_size, vocab, seq;
} config_t;

typedef struct {
    float *emb;              /* vocab x dim */
    float *wcls;             /* vocab x dim classifier (not shared) */
    float *rms_att, *rms_ffn; /* layers x dim */
    float *wq, *wk, *wv, *wo; /* layers x dim x dim */
    float *w1, *w3;           /* layers x hidden x dim */
    float *w2;                /* layers x dim x hidden */
    float *rms_final;         /* dim */
} weights_t;

static float *random_tensor(rng_t *rng, size_t n, float scale, float offset) {
    float *p = (float *)xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        p[i] = offset + scale * (float)(rng_unit(rng) * 2.0 - 1.0);
    return p;
}

static void rmsnorm(float *o, const float *x, const float *w, int n) {
    float ss = 0.0f;
    for (int j = 0; j < n; j++)
        ss += x[j] * x[j];
    ss = 1.0f / sqrtf(ss / (float)n + 1e-5f);
    for (int j = 0; j < n; j++)
        o[j] = w[j] * (ss * x[j]);
}

/* xout (d) = W (d x n) @ x (n) */
static void matmul(float *xout, const float *x, const float *w, int n, int d) {
    for (int i = 0; i < d; i++) {
        const float *row = w + (size_t)i * n;
        float v = 0.0f;
        for (int j = 0; j < n; j++)
            v += row[j] * x[j];
        xout[i] = v;
    }
}

static float expf_portable(float x) { return (float)bm_exp((double)x); }

static void softmax(float *x, int n) {
    float mx = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > mx)
            mx = x[i];
    float sum = 0.0f;
    for (int i = 0; i < n; i++) {
        x[i] = expf_portable(x[i] - mx);
        sum += x[i];
    }
    for (int i = 0; i < n; i++)
        x[i] /= sum;
}

int main(int argc, char **argv) {
    config_t c;
    c.dim = (int)arg_int(argc, argv, 'd', 64);
    c.layers = (int)arg_int(argc, argv, 'l', 2);
    c.heads = (int)arg_int(argc, argv, 'a', 4);
    c.vocab = (int)arg_int(argc, argv, 'v', 256);
    c.seq = (int)arg_int(argc, argv, 't', 16);
    if (c.dim < 2 || c.dim > 8192 || c.layers < 1 || c.layers > 128 || c.heads < 1 ||
        c.dim % c.heads != 0 || (c.dim / c.heads) % 2 != 0 || c.vocab < 2 || c.vocab > 1000000 ||
        c.seq < 1 || c.seq > 100000) {
        fprintf(stderr, "usage: llama2 -d DIM -l LAYERS -a HEADS (dividing DIM into even head "
                        "sizes) -v VOCAB -t STEPS\n");
        return 2;
    }
    c.head_size = c.dim / c.heads;
    c.hidden = ((c.dim * 8 / 3) + 31) / 32 * 32;
    int dim = c.dim, hid = c.hidden;
    size_t L = (size_t)c.layers, D = (size_t)dim, H = (size_t)hid;

    rng_t rng = {0x11a3a2};
    weights_t w;
    float sd = 1.0f / sqrtf((float)dim), sh = 1.0f / sqrtf((float)hid);
    w.emb = random_tensor(&rng, (size_t)c.vocab * D, 1.0f, 0.0f);
    w.rms_att = random_tensor(&rng, L * D, 0.1f, 1.0f);
    w.rms_ffn = random_tensor(&rng, L * D, 0.1f, 1.0f);
    w.wq = random_tensor(&rng, L * D * D, sd, 0.0f);
    w.wk = random_tensor(&rng, L * D * D, sd, 0.0f);
    w.wv = random_tensor(&rng, L * D * D, sd, 0.0f);
    w.wo = random_tensor(&rng, L * D * D, sd, 0.0f);
    w.w1 = random_tensor(&rng, L * H * D, sd, 0.0f);
    w.w3 = random_tensor(&rng, L * H * D, sd, 0.0f);
    w.w2 = random_tensor(&rng, L * D * H, sh, 0.0f);
    w.rms_final = random_tensor(&rng, D, 0.1f, 1.0f);
    w.wcls = random_tensor(&rng, (size_t)c.vocab * D, sd, 0.0f);
    rng_t sampler = {0x5a3b1e};

    float *x = (float *)xmalloc(D * sizeof(float)), *xb = (float *)xmalloc(D * sizeof(float));
    float *xb2 = (float *)xmalloc(D * sizeof(float)), *q = (float *)xmalloc(D * sizeof(float));
    float *hb = (float *)xmalloc(H * sizeof(float)), *hb2 = (float *)xmalloc(H * sizeof(float));
    float *att = (float *)xmalloc((size_t)c.seq * sizeof(float));
    float *logits = (float *)xmalloc((size_t)c.vocab * sizeof(float));
    float *kcache = (float *)xcalloc(L * (size_t)c.seq * D, sizeof(float));
    float *vcache = (float *)xcalloc(L * (size_t)c.seq * D, sizeof(float));
    /* rotary frequencies: 10000^(-i/head_size) for even i */
    float *freq = (float *)xmalloc((size_t)c.head_size * sizeof(float));
    for (int i = 0; i < c.head_size; i += 2)
        freq[i] = (float)bm_exp(-bm_log(10000.0) * (double)i / (double)c.head_size);

    hash_t h = HASH_INIT;
    int token = 1;
    printf("tokens:");
    for (int pos = 0; pos < c.seq; pos++) {
        memcpy(x, w.emb + (size_t)token * D, D * sizeof(float));
        for (size_t l = 0; l < L; l++) {
            float *kc = kcache + l * (size_t)c.seq * D, *vc = vcache + l * (size_t)c.seq * D;
            float *k = kc + (size_t)pos * D, *v = vc + (size_t)pos * D;
            rmsnorm(xb, x, w.rms_att + l * D, dim);
            matmul(q, xb, w.wq + l * D * D, dim, dim);
            matmul(k, xb, w.wk + l * D * D, dim, dim);
            matmul(v, xb, w.wv + l * D * D, dim, dim);
            /* RoPE: rotate each (even, odd) pair by pos * freq */
            for (int i = 0; i < dim; i += 2) {
                double s, co;
                bm_sincos((double)pos * (double)freq[i % c.head_size], &s, &co);
                float fs = (float)s, fc = (float)co;
                float q0 = q[i], q1 = q[i + 1], k0 = k[i], k1 = k[i + 1];
                q[i] = q0 * fc - q1 * fs;
                q[i + 1] = q0 * fs + q1 * fc;
                k[i] = k0 * fc - k1 * fs;
                k[i + 1] = k0 * fs + k1 * fc;
            }
            float scale = 1.0f / sqrtf((float)c.head_size);
            for (int hd = 0; hd < c.heads; hd++) {
                const float *qh = q + hd * c.head_size;
                for (int t = 0; t <= pos; t++) {
                    const float *kh = kc + (size_t)t * D + hd * c.head_size;
                    float score = 0.0f;
                    for (int i = 0; i < c.head_size; i++)
                        score += qh[i] * kh[i];
                    att[t] = score * scale;
                }
                softmax(att, pos + 1);
                float *out = xb + hd * c.head_size;
                for (int i = 0; i < c.head_size; i++)
                    out[i] = 0.0f;
                for (int t = 0; t <= pos; t++) {
                    const float *vh = vc + (size_t)t * D + hd * c.head_size;
                    for (int i = 0; i < c.head_size; i++)
                        out[i] += att[t] * vh[i];
                }
            }
            matmul(xb2, xb, w.wo + l * D * D, dim, dim);
            for (int i = 0; i < dim; i++)
                x[i] += xb2[i];
            rmsnorm(xb, x, w.rms_ffn + l * D, dim);
            matmul(hb, xb, w.w1 + l * H * D, dim, hid);
            matmul(hb2, xb, w.w3 + l * H * D, dim, hid);
            for (int i = 0; i < hid; i++) {
                float s = hb[i] / (1.0f + expf_portable(-hb[i])); /* SiLU */
                hb[i] = s * hb2[i];
            }
            matmul(xb, hb, w.w2 + l * D * H, hid, dim);
            for (int i = 0; i < dim; i++)
                x[i] += xb[i];
        }
        rmsnorm(x, x, w.rms_final, dim);
        matmul(logits, x, w.wcls, dim, c.vocab);
        /* sample at temperature 1 with the seeded generator, as llama2.c */
        hash_f32(&h, logits[0]);
        softmax(logits, c.vocab);
        float coin = (float)rng_unit(&sampler), cdf = 0.0f;
        int next = c.vocab - 1;
        for (int i = 0; i < c.vocab; i++) {
            cdf += logits[i];
            if (coin < cdf) {
                next = i;
                break;
            }
        }
        hash_f32(&h, logits[next]);
        hash_u64(&h, (uint64_t)next);
        if (pos < 32)
            printf(" %d", next);
        token = next;
    }
    printf("%s\n", c.seq > 32 ? " ..." : "");
    for (int i = 0; i < c.vocab; i++)
        hash_f32(&h, logits[i]);
    printf("last token %d probability %.6e\n", token, (double)logits[token]);
    print_checksum(&h);
    return 0;
}
