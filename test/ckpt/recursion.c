/* Deep and branching recursion, so checkpoints land many frames down.
 * Exits with 7 so the tests check that the exit code survives a restore. */
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline)) static unsigned fib(unsigned n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

__attribute__((noinline)) static unsigned ack(unsigned m, unsigned n) {
    if (m == 0) return n + 1;
    if (n == 0) return ack(m - 1, 1);
    return ack(m - 1, ack(m, n - 1));
}

static unsigned long moves;
__attribute__((noinline)) static void hanoi(int n, int from, int to, int via) {
    if (n == 0) return;
    hanoi(n - 1, from, via, to);
    moves++;
    hanoi(n - 1, via, to, from);
}

__attribute__((noinline)) static int is_odd(unsigned n);
__attribute__((noinline)) static int is_even(unsigned n) { return n == 0 ? 1 : is_odd(n - 1); }
__attribute__((noinline)) static int is_odd(unsigned n) { return n == 0 ? 0 : is_even(n - 1); }

/* Recursion with a local array live across the call. */
__attribute__((noinline)) static long deep(int depth, long acc) {
    volatile long local[4] = {depth, acc, depth * 3, acc ^ depth};
    if (depth == 0) return acc;
    long r = deep(depth - 1, acc * 31 + depth);
    return r + local[0] - local[2] + (local[3] & 7);
}

int main(void) {
    for (unsigned n = 10; n <= 22; n += 4) printf("fib(%u) = %u\n", n, fib(n));
    printf("ack(2, 3) = %u\n", ack(2, 3));
    printf("ack(3, 3) = %u\n", ack(3, 3));
    hanoi(12, 1, 3, 2);
    printf("hanoi(12) moves = %lu\n", moves);
    printf("is_even(1001) = %d\n", is_even(1001));
    printf("deep(500) = %ld\n", deep(500, 1));
    exit(7);
}
