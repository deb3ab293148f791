/* Files: one file stays open for writing across the whole run (so a
 * checkpoint happens while it is open), another is appended to, a third
 * is written, closed and read back. argv[1] is the preopened directory. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static unsigned work(unsigned seed) {
    unsigned h = seed;
    for (int i = 0; i < 3000; i++) h = h * 2654435761u + (h >> 13);
    return h;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: files DIR\n"); return 2; }
    char path[512];
    snprintf(path, sizeof path, "%s/out.txt", argv[1]);
    int out = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0) { printf("open out failed\n"); return 1; }
    snprintf(path, sizeof path, "%s/log.txt", argv[1]);
    FILE *log = fopen(path, "a");
    if (!log) { printf("open log failed\n"); return 1; }
    unsigned h = 1;
    for (int line = 0; line < 40; line++) {
        h = work(h + line);
        char buf[64];
        int n = snprintf(buf, sizeof buf, "line %d: %08x\n", line, h);
        if (write(out, buf, n) != n) { printf("write failed\n"); return 1; }
        if (line % 8 == 0) { fprintf(log, "checkpoint-able step %d\n", line); fflush(log); }
    }
    off_t end = lseek(out, 0, SEEK_CUR);
    printf("out.txt offset %ld\n", (long)end);
    close(out);
    fclose(log);

    snprintf(path, sizeof path, "%s/data.bin", argv[1]);
    FILE *f = fopen(path, "w+");
    for (int i = 0; i < 1000; i++) fputc((i * 7) & 0xff, f);
    rewind(f);
    long s = 0;
    int c;
    while ((c = fgetc(f)) != EOF) s += c;
    fclose(f);
    printf("data.bin sum %ld\n", s);

    snprintf(path, sizeof path, "%s/out.txt", argv[1]);
    f = fopen(path, "r");
    char line[64];
    int lines = 0;
    while (fgets(line, sizeof line, f)) lines++;
    fclose(f);
    printf("out.txt lines %d\n", lines);
    return 0;
}
