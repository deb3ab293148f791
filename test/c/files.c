/* Regular files: write, read, seek, append, pread/pwrite, truncate. */
#include "common.h"
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static long size_of(int fd) {
    struct stat st;
    MUST(fstat(fd, &st));
    return (long)st.st_size;
}

int main(int argc, char **argv) {
    const char *d = workdir(argc, argv);
    int fd = open(P(d, "data.txt"), O_CREAT | O_RDWR | O_TRUNC, 0644);
    MUST(fd);
    const char *text = "0123456789abcdefghij";
    printf("write: %zd\n", write(fd, text, strlen(text)));
    printf("size: %ld\n", size_of(fd));
    printf("tell: %ld\n", (long)lseek(fd, 0, SEEK_CUR));
    printf("seek set 5: %ld\n", (long)lseek(fd, 5, SEEK_SET));
    char buf[64] = {0};
    printf("read: %zd '%.*s'\n", read(fd, buf, 5), 5, buf);
    printf("seek cur -3: %ld\n", (long)lseek(fd, -3, SEEK_CUR));
    memset(buf, 0, sizeof buf);
    printf("read: %zd '%s'\n", read(fd, buf, 4), buf);
    printf("seek end -2: %ld\n", (long)lseek(fd, -2, SEEK_END));
    memset(buf, 0, sizeof buf);
    printf("read at end: %zd '%s'\n", read(fd, buf, 10), buf);
    printf("read past end: %zd\n", read(fd, buf, 10));
    REPORT("seek negative", lseek(fd, -100, SEEK_SET));
    /* Overwrite in the middle, and write past the end (a hole). */
    MUST(lseek(fd, 10, SEEK_SET));
    printf("overwrite: %zd\n", write(fd, "ABC", 3));
    MUST(lseek(fd, 30, SEEK_SET));
    printf("past end: %zd", write(fd, "Z", 1));
    printf(" size=%ld\n", size_of(fd));
    memset(buf, 0, sizeof buf);
    printf("pread: %zd '%.4s'\n", pread(fd, buf, 4, 8), buf);
    printf("pwrite: %zd\n", pwrite(fd, "xy", 2, 0));
    printf("tell after p*: %ld\n", (long)lseek(fd, 0, SEEK_CUR));
    /* Truncate shorter and longer. */
    MUST(ftruncate(fd, 12));
    printf("truncated: %ld\n", size_of(fd));
    MUST(ftruncate(fd, 16));
    printf("extended: %ld\n", size_of(fd));
    MUST(fsync(fd));
    MUST(fdatasync(fd));
    MUST(close(fd));
    REPORT("close again", close(fd));

    /* Append mode: writes go to the end whatever the position. */
    fd = open(P(d, "log.txt"), O_CREAT | O_WRONLY | O_APPEND, 0644);
    MUST(fd);
    for (int i = 0; i < 3; i++) {
        char line[32];
        int n = snprintf(line, sizeof line, "line %d\n", i);
        MUST(write(fd, line, n));
    }
    MUST(lseek(fd, 0, SEEK_SET));
    MUST(write(fd, "tail\n", 5));
    printf("append size: %ld\n", size_of(fd));
    int fl = fcntl(fd, F_GETFL);
    printf("append flag: %d, accmode wronly: %d\n", (fl & O_APPEND) != 0,
           (fl & O_ACCMODE) == O_WRONLY);
    MUST(close(fd));

    /* Reopen without truncation, check content with stdio. */
    FILE *f = fopen(P(d, "log.txt"), "r");
    if (!f) return 98;
    char line[64];
    while (fgets(line, sizeof line, f)) printf("log: %s", line);
    fclose(f);
    f = fopen(P(d, "log.txt"), "a");
    fputs("appended by stdio\n", f);
    fclose(f);

    /* O_EXCL, O_TRUNC, a big file written in chunks. */
    REPORT("excl existing", open(P(d, "data.txt"), O_CREAT | O_EXCL | O_WRONLY, 0644));
    REPORT("open missing", open(P(d, "missing.txt"), O_RDONLY));
    fd = open(P(d, "big.bin"), O_CREAT | O_WRONLY | O_TRUNC, 0644);
    MUST(fd);
    static char chunk[100000];
    for (size_t i = 0; i < sizeof chunk; i++) chunk[i] = (char)(i * 7);
    long total = 0;
    for (int i = 0; i < 10; i++) total += write(fd, chunk, sizeof chunk);
    printf("big: %ld size=%ld\n", total, size_of(fd));
    MUST(close(fd));
    fd = open(P(d, "big.bin"), O_RDONLY);
    MUST(fd);
    unsigned int sum = 0; /* 32 bits on both targets */
    ssize_t n;
    while ((n = read(fd, chunk, 4096)) > 0)
        for (ssize_t i = 0; i < n; i++) sum = sum * 31 + (unsigned char)chunk[i];
    printf("big checksum: %u\n", sum);
    REPORT("write to read-only", write(fd, "x", 1));
    MUST(close(fd));
    REPORT("read bad fd", read(1000, buf, 1));
    return 0;
}
