/* Floating point in locals, on the operand stack across calls and in
 * memory: a small n-body, a float series and libm functions. */
#include <math.h>
#include <stdio.h>

#define NB 5
static double px[NB], py[NB], pz[NB], vx[NB], vy[NB], vz[NB], m[NB];

__attribute__((noinline)) static double energy(void) {
    double e = 0;
    for (int i = 0; i < NB; i++) {
        e += 0.5 * m[i] * (vx[i] * vx[i] + vy[i] * vy[i] + vz[i] * vz[i]);
        for (int j = i + 1; j < NB; j++) {
            double dx = px[i] - px[j], dy = py[i] - py[j], dz = pz[i] - pz[j];
            e -= m[i] * m[j] / sqrt(dx * dx + dy * dy + dz * dz);
        }
    }
    return e;
}

__attribute__((noinline)) static void advance(double dt) {
    for (int i = 0; i < NB; i++)
        for (int j = i + 1; j < NB; j++) {
            double dx = px[i] - px[j], dy = py[i] - py[j], dz = pz[i] - pz[j];
            double d2 = dx * dx + dy * dy + dz * dz;
            double mag = dt / (d2 * sqrt(d2));
            vx[i] -= dx * m[j] * mag; vy[i] -= dy * m[j] * mag; vz[i] -= dz * m[j] * mag;
            vx[j] += dx * m[i] * mag; vy[j] += dy * m[i] * mag; vz[j] += dz * m[i] * mag;
        }
    for (int i = 0; i < NB; i++) { px[i] += dt * vx[i]; py[i] += dt * vy[i]; pz[i] += dt * vz[i]; }
}

__attribute__((noinline)) static float term(int k) { return (k & 1 ? -1.0f : 1.0f) / (2.0f * k + 1.0f); }

int main(void) {
    for (int i = 0; i < NB; i++) {
        px[i] = i * 1.5; py[i] = (i % 2) * 0.7 - 0.3; pz[i] = i * 0.1;
        vx[i] = 0.01 * i; vy[i] = 0.02 * (NB - i); vz[i] = -0.005 * i; m[i] = 1.0 + i * 0.25;
    }
    printf("energy before: %.9f\n", energy());
    for (int step = 1; step <= 4; step++) {
        for (int k = 0; k < 2500; k++) advance(0.001);
        printf("energy after %d: %.9f\n", step * 2500, energy());
    }
    float pi4 = 0;
    for (int k = 0; k < 100000; k++) pi4 = pi4 + term(k);
    printf("leibniz pi: %.6f\n", 4.0f * pi4);
    double acc = 0;
    for (int k = 1; k <= 2000; k++) acc += sin(k * 0.001) * exp(-k * 0.0005) + log1p(k) / cbrt(k);
    printf("libm mix: %.9f\n", acc);
    return 0;
}
