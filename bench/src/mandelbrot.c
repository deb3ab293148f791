/*
 * mandelbrot: the Computer Language Benchmarks Game's Mandelbrot set bitmap
 * (50 iterations, escape radius 2) of N x N points over [-1.5,0.5]x[-1,1].
 * The checksum hashes the packed bitmap instead of printing it. Usage:
 * mandelbrot -n N.
 */
#include "bench_common.h"

int main(int argc, char **argv) {
    int64_t n = arg_int(argc, argv, 'n', 200);
    if (n < 1 || n > 100000) {
        fprintf(stderr, "usage: mandelbrot -n N\n");
        return 2;
    }
    hash_t h = HASH_INIT;
    int64_t inside = 0;
    for (int64_t y = 0; y < n; y++) {
        double ci = 2.0 * (double)y / (double)n - 1.0;
        uint8_t byte = 0;
        int bits = 0;
        for (int64_t x = 0; x < n; x++) {
            double cr = 2.0 * (double)x / (double)n - 1.5;
            double zr = 0.0, zi = 0.0, tr = 0.0, ti = 0.0;
            int i;
            for (i = 0; i < 50 && tr + ti <= 4.0; i++) {
                zi = 2.0 * zr * zi + ci;
                zr = tr - ti + cr;
                tr = zr * zr;
                ti = zi * zi;
            }
            int in = tr + ti <= 4.0;
            inside += in;
            byte = (uint8_t)((byte << 1) | in);
            if (++bits == 8) {
                hash_bytes(&h, &byte, 1);
                byte = 0;
                bits = 0;
            }
        }
        if (bits) {
            byte = (uint8_t)(byte << (8 - bits));
            hash_bytes(&h, &byte, 1);
        }
    }
    printf("mandelbrot %" PRId64 "x%" PRId64 ": %" PRId64 " points inside\n", n, n, inside);
    print_checksum(&h);
    return 0;
}
