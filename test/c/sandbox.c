/* Tries to leave the preopened directory argv[1] in every way a program
 * might; prints the errno of each attempt. Run only under WASI (the
 * expectations are those of a sandbox). argv[1] holds a symlink `to_root`
 * pointing at / and `to_parent` pointing at .., made by the test. */
#include "common.h"
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv) {
    const char *d = workdir(argc, argv);
    struct stat st;
    REPORT("open ../x", open(P(d, "../x"), O_RDONLY));
    REPORT("open ../outside.txt", open(P(d, "../outside.txt"), O_RDONLY));
    REPORT("open /etc/passwd", open("/etc/passwd", O_RDONLY));
    REPORT("open to_root/etc/passwd", open(P(d, "to_root/etc/passwd"), O_RDONLY));
    REPORT("open to_parent/outside.txt", open(P(d, "to_parent/outside.txt"), O_RDONLY));
    REPORT("stat to_root/etc", stat(P(d, "to_root/etc"), &st));
    REPORT("stat ..", stat(P(d, ".."), &st));
    REPORT("opendir to_root", opendir(P(d, "to_root")) ? 0 : -1);
    REPORT("mkdir ../escape", mkdir(P(d, "../escape"), 0755));
    REPORT("create to_parent/escape", open(P(d, "to_parent/escape"), O_CREAT | O_WRONLY, 0644));
    REPORT("unlink ../outside.txt", unlink(P(d, "../outside.txt")));
    REPORT("rename into ..", rename(P(d, "inside.txt"), P(d, "../stolen.txt")));
    REPORT("link to_parent/outside.txt", link(P(d, "to_parent/outside.txt"), P(d, "hard")));
    REPORT("symlink then open", symlink("/etc/passwd", P(d, "sneaky")));
    REPORT("open sneaky", open(P(d, "sneaky"), O_RDONLY));
    REPORT("open inside.txt", open(P(d, "inside.txt"), O_RDONLY));
    return 0;
}
