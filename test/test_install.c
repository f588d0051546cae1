/* Installation as a user sees it: `make install PREFIX=<tmp>/usr` (run from the repo root,
   as the tests are), then a small C program written here is built with the flags of
   `pkg-config --cflags --libs kne` against the installed tree and run: it checks
   kne_version() against KNE_VERSION_STRING, loads kne-gpt2-tiny and runs one forward.
   Also: the installed files and symlinks, the SONAME, a staged install (DESTDIR) keeps
   the final prefix in kne.pc, `make uninstall`, the library exports only kne_* symbols,
   and the public header compiles as strict C99 and as C++11. */
#include "kne.h"
#include "test.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

static char tmp[256];
static char bdir[40] = "build";   /* the build tree the tests run from ($B) */
static char make_vars[200];       /* B=... SANITIZE=... matching that tree */
static char san_flag[64];         /* -fsanitize=... for programs linking a sanitized libkne */

/* Runs a shell command; its output goes to <tmp>/log, printed on failure. Returns the exit status. */
static int sh(const char *cmd)
{
    char full[8192];
    snprintf(full, sizeof full, "(%s) >%s/log 2>&1", cmd, tmp);
    int rc = system(full);
    rc = rc == -1 ? -1 : WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
    if (rc != 0) {
        fprintf(stderr, "command failed (%d): %s\n", rc, cmd);
        char cat[600];
        snprintf(cat, sizeof cat, "tail -n 30 %s/log >&2", tmp);
        if (system(cat) != 0) { /* nothing more to say */ }
    }
    return rc;
}

/* First line of a command's stdout into out ("" on failure). */
static void capture(const char *cmd, char *out, size_t cap)
{
    out[0] = '\0';
    FILE *p = popen(cmd, "r");
    if (!p) return;
    if (!fgets(out, (int)cap, p)) out[0] = '\0';
    out[strcspn(out, "\n")] = '\0';
    pclose(p);
}

static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char p[PATH_MAX];
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            struct stat st;
            if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) remove_tree(p);
            else unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

static int read_file(const char *path, char **data, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    *data = malloc((size_t)n + 1);
    *len = fread(*data, 1, (size_t)n, f);
    (*data)[*len] = '\0';
    fclose(f);
    return *len == (size_t)n;
}

static int same_file_contents(const char *a, const char *b)
{
    char *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    int ok = read_file(a, &x, &nx) && read_file(b, &y, &ny) && nx == ny && memcmp(x, y, nx) == 0;
    free(x);
    free(y);
    return ok;
}

/* path is a symlink whose target (as written) is want. */
static int link_is(const char *path, const char *want)
{
    char buf[PATH_MAX];
    ssize_t n = readlink(path, buf, sizeof buf - 1);
    if (n < 0) return 0;
    buf[n] = '\0';
    return strcmp(buf, want) == 0;
}

static int is_regular(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Checks the files of an install rooted at root (= DESTDIR + PREFIX). */
static void check_tree(const char *root)
{
    char p[1024], q[2048];
    snprintf(p, sizeof p, "%s/include/kne.h", root);
    CHECK_MSG(same_file_contents(p, "include/kne.h"), "%s differs from include/kne.h", p);
    snprintf(p, sizeof p, "%s/lib/libkne.so", root);
    CHECK_MSG(link_is(p, "libkne.so.0"), "%s is not a symlink to libkne.so.0", p);
    snprintf(p, sizeof p, "%s/lib/libkne.so.0", root);
    CHECK_MSG(link_is(p, "libkne.so." KNE_VERSION_STRING), "%s is not a symlink to libkne.so." KNE_VERSION_STRING, p);
    snprintf(p, sizeof p, "%s/lib/libkne.so." KNE_VERSION_STRING, root);
    CHECK_MSG(is_regular(p), "%s is not a regular file", p);
    snprintf(q, sizeof q, "readelf -d %s | sed -n 's/.*(SONAME).*\\[\\(.*\\)\\].*/\\1/p'", p);
    char soname[128];
    capture(q, soname, sizeof soname);
    CHECK_MSG(!strcmp(soname, "libkne.so.0"), "SONAME of %s is '%s', want libkne.so.0", p, soname);
    snprintf(p, sizeof p, "%s/lib/pkgconfig/kne.pc", root);
    CHECK_MSG(is_regular(p), "%s missing", p);
    snprintf(p, sizeof p, "%s/bin/kne", root);
    CHECK_MSG(access(p, X_OK) == 0, "%s missing or not executable", p);
}

static const char *prog_src =
    "#include <kne.h>\n"
    "#include <math.h>\n"
    "#include <stdio.h>\n"
    "#include <stdlib.h>\n"
    "#include <string.h>\n"
    "int main(int argc, char **argv)\n"
    "{\n"
    "    if (argc < 2) return 2;\n"
    "    printf(\"version %s\\n\", kne_version());\n"
    "    if (strcmp(kne_version(), KNE_VERSION_STRING) != 0 || kne_version_number() != KNE_VERSION_NUMBER) {\n"
    "        printf(\"header says %s (%d)\\n\", KNE_VERSION_STRING, KNE_VERSION_NUMBER);\n"
    "        return 3;\n"
    "    }\n"
    "    kne_model *m = NULL;\n"
    "    kne_status s = kne_model_load(&m, argv[1], NULL);\n"
    "    if (s != KNE_OK) { printf(\"load: %s: %s\\n\", kne_status_str(s), kne_last_error()); return 4; }\n"
    "    int32_t ids[64];\n"
    "    size_t n = 0;\n"
    "    s = kne_tokenize(m, \"The capital of France is\", 0, ids, 64, &n);\n"
    "    if (s != KNE_OK || n == 0) { printf(\"tokenize: %s\\n\", kne_last_error()); return 5; }\n"
    "    size_t V = (size_t)kne_model_n_vocab(m);\n"
    "    float *lg = malloc(sizeof(float) * n * V);\n"
    "    s = kne_model_forward(m, ids, n, lg);\n"
    "    if (s != KNE_OK) { printf(\"forward: %s\\n\", kne_last_error()); return 6; }\n"
    "    size_t best = 0;\n"
    "    for (size_t v = 0; v < V; v++) {\n"
    "        if (!isfinite(lg[(n - 1) * V + v])) { printf(\"non-finite logit\\n\"); return 7; }\n"
    "        if (lg[(n - 1) * V + v] > lg[(n - 1) * V + best]) best = v;\n"
    "    }\n"
    "    char text[64] = \"\";\n"
    "    int32_t top = (int32_t)best;\n"
    "    size_t len = 0;\n"
    "    kne_detokenize(m, &top, 1, text, sizeof text, &len);\n"
    "    printf(\"forward ok: %zu tokens, top id %zu '%s' (%s, %d layers)\\n\", n, best, text, kne_model_arch(m),\n"
    "           kne_model_n_layers(m));\n"
    "    free(lg);\n"
    "    kne_model_free(m);\n"
    "    return 0;\n"
    "}\n";

static void test_install_and_use(void)
{
    char cmd[4096], prefix[300], path[PATH_MAX], model[1024], line[512];
    snprintf(prefix, sizeof prefix, "%s/usr", tmp);
    snprintf(cmd, sizeof cmd, "make -s install %s PREFIX=%s DESTDIR=", make_vars, prefix);
    int rc = sh(cmd);
    CHECK_MSG(rc == 0, "%s exited %d", cmd, rc);
    if (rc != 0) return;
    check_tree(prefix);

    /* the .pc of a PREFIX install names that prefix */
    snprintf(cmd, sizeof cmd, "PKG_CONFIG_PATH=%s/lib/pkgconfig pkg-config --modversion kne", prefix);
    capture(cmd, line, sizeof line);
    CHECK_MSG(!strcmp(line, KNE_VERSION_STRING), "pkg-config --modversion kne: '%s'", line);
    snprintf(cmd, sizeof cmd, "PKG_CONFIG_PATH=%s/lib/pkgconfig pkg-config --variable=libdir kne", prefix);
    capture(cmd, line, sizeof line);
    snprintf(path, sizeof path, "%s/lib", prefix);
    CHECK_MSG(!strcmp(line, path), "kne.pc libdir '%s', want %s", line, path);

    /* a program built the way a user would, against the installed tree only */
    snprintf(path, sizeof path, "%s/prog.c", tmp);
    FILE *f = fopen(path, "w");
    if (!f || fputs(prog_src, f) < 0) { perror(path); exit(2); }
    fclose(f);
    snprintf(cmd, sizeof cmd,
             "cd %s && cc -std=c99 -Wall -Wextra -Werror %s prog.c -o prog "
             "$(PKG_CONFIG_PATH=%s/lib/pkgconfig pkg-config --cflags --libs kne) -lm",
             tmp, san_flag, prefix);
    rc = sh(cmd);
    CHECK_MSG(rc == 0, "building the program with pkg-config flags failed");
    if (rc != 0) return;
    /* it resolves libkne from the install (rpath from kne.pc), not from the build tree */
    snprintf(cmd, sizeof cmd, "ldd %s/prog | grep libkne", tmp);
    capture(cmd, line, sizeof line);
    snprintf(path, sizeof path, "%s/lib/libkne.so.0", prefix);
    CHECK_MSG(strstr(line, path) != NULL, "prog resolves libkne as '%s', want %s", line, path);
    test_path(model, sizeof model, "models/kne-gpt2-tiny");
    snprintf(cmd, sizeof cmd, "%s/prog %s", tmp, model);
    rc = sh(cmd);
    snprintf(path, sizeof path, "%s/log", tmp);
    char *out = NULL;
    size_t len = 0;
    if (read_file(path, &out, &len)) printf("%s", out);
    CHECK_MSG(rc == 0, "installed program exited %d", rc);
    CHECK(out && strstr(out, "version " KNE_VERSION_STRING "\n") && strstr(out, "forward ok"));
    /* the testbed model knows this one */
    CHECK_MSG(out && strstr(out, "' Paris'"), "kne-gpt2-tiny should continue 'The capital of France is' with ' Paris'");
    free(out);

    /* make uninstall removes what install put there */
    snprintf(cmd, sizeof cmd, "make -s uninstall %s PREFIX=%s DESTDIR=", make_vars, prefix);
    CHECK(sh(cmd) == 0);
    snprintf(path, sizeof path, "%s/lib/libkne.so.0", prefix);
    struct stat st;
    CHECK_MSG(lstat(path, &st) != 0, "%s still there after make uninstall", path);
    snprintf(path, sizeof path, "%s/include/kne.h", prefix);
    CHECK_MSG(lstat(path, &st) != 0, "%s still there after make uninstall", path);
}

/* A staged install for packaging: files under DESTDIR, kne.pc naming the final prefix. */
static void test_destdir(void)
{
    char cmd[4096], stage[300], root[400], path[PATH_MAX];
    snprintf(stage, sizeof stage, "%s/stage", tmp);
    snprintf(cmd, sizeof cmd, "make -s install %s DESTDIR=%s PREFIX=/usr", make_vars, stage);
    int rc = sh(cmd);
    CHECK_MSG(rc == 0, "%s exited %d", cmd, rc);
    if (rc != 0) return;
    snprintf(root, sizeof root, "%s/usr", stage);
    check_tree(root);
    snprintf(path, sizeof path, "%s/usr/lib/pkgconfig/kne.pc", stage);
    char *pc = NULL;
    size_t len = 0;
    CHECK(read_file(path, &pc, &len));
    if (pc) {
        CHECK_MSG(strstr(pc, "prefix=/usr\n") && strstr(pc, "libdir=/usr/lib\n") && !strstr(pc, stage),
                  "staged kne.pc should name /usr, not the stage dir:\n%s", pc);
        CHECK(strstr(pc, "Version: " KNE_VERSION_STRING "\n") != NULL);
    }
    free(pc);
}

/* Only kne_* symbols leave the library. */
static void test_exports(void)
{
    char cmd[2048], line[512];
    snprintf(cmd, sizeof cmd, "nm -D --defined-only %s/libkne.so", bdir);
    FILE *p = popen(cmd, "r");
    CHECK(p != NULL);
    if (!p) return;
    int n_kne = 0, n_other = 0;
    while (fgets(line, sizeof line, p)) {
        line[strcspn(line, "\n")] = '\0';
        const char *name = strrchr(line, ' ');
        name = name ? name + 1 : line;
        if (!strncmp(name, "kne_", 4)) n_kne++;
        else {
            n_other++;
            fprintf(stderr, "exported symbol outside kne_*: %s\n", line);
        }
    }
    int rc = pclose(p);
    CHECK(rc == 0);
    printf("exports: %d kne_* symbols, %d others\n", n_kne, n_other);
    CHECK(n_other == 0);
    /* exactly the KNE_API functions of the header: each declared one exported, none more */
    snprintf(cmd, sizeof cmd,
             "grep '^KNE_API' include/kne.h | sed -E 's/.*[ *](kne_[a-z0-9_]+)\\(.*/\\1/' | sort >%s/declared && "
             "nm -D --defined-only %s/libkne.so | awk '{print $3}' | sort >%s/exported && "
             "diff %s/declared %s/exported", tmp, bdir, tmp, tmp, tmp);
    CHECK_MSG(sh(cmd) == 0, "the exported symbols differ from the KNE_API declarations of kne.h (diff above)");
    char count[32];
    capture("grep -c '^KNE_API' include/kne.h", count, sizeof count);
    CHECK_MSG(atoi(count) == n_kne, "kne.h declares %s KNE_API functions, the library exports %d", count, n_kne);
}

/* The public header alone, strict C99 and C++11. */
static void test_header(void)
{
    char cmd[1024], path[512];
    snprintf(path, sizeof path, "%s/hdr.c", tmp);
    FILE *f = fopen(path, "w");
    if (!f) { perror(path); exit(2); }
    fputs("#include <kne.h>\n"
          "int main(void) { kne_model_params p = kne_model_default_params(); return (int)p.struct_size == 0; }\n", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "cc -std=c99 -pedantic -Werror -Wall -Wextra -Iinclude -fsyntax-only %s", path);
    CHECK_MSG(sh(cmd) == 0, "kne.h does not compile as strict C99");
    snprintf(cmd, sizeof cmd, "cc -std=c11 -pedantic -Werror -Wall -Wextra -Iinclude -fsyntax-only %s", path);
    CHECK_MSG(sh(cmd) == 0, "kne.h does not compile as strict C11");
    snprintf(cmd, sizeof cmd, "g++ -x c++ -std=c++11 -pedantic -Werror -Wall -Wextra -Iinclude -fsyntax-only %s", path);
    CHECK_MSG(sh(cmd) == 0, "kne.h does not compile as C++11");
    /* twice in one unit (include guard), and with nothing before it */
    snprintf(path, sizeof path, "%s/hdr2.c", tmp);
    f = fopen(path, "w");
    if (!f) { perror(path); exit(2); }
    fputs("#include <kne.h>\n#include <kne.h>\nint x = KNE_VERSION_NUMBER;\n", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "cc -std=c99 -pedantic -Werror -Wall -Wextra -Iinclude -fsyntax-only %s", path);
    CHECK_MSG(sh(cmd) == 0, "kne.h included twice fails");
}

int main(void)
{
    snprintf(tmp, sizeof tmp, "%s/kne-install-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmp)) { perror(tmp); return 2; }
    const char *b = getenv("B");
    if (b && *b && strlen(b) < sizeof bdir) snprintf(bdir, sizeof bdir, "%s", b);
    if (!strncmp(bdir, "build-", 6)) { /* a sanitizer tree: make SANITIZE=address -> build-address */
        snprintf(make_vars, sizeof make_vars, "SANITIZE=%s", bdir + 6);
        snprintf(san_flag, sizeof san_flag, "-fsanitize=%s", bdir + 6);
    } else {
        snprintf(make_vars, sizeof make_vars, "B=%s", bdir);
    }
    struct stat st;
    if (stat("Makefile", &st) != 0 || stat("include/kne.h", &st) != 0) {
        fprintf(stderr, "test_install must run from the repository root\n");
        return 2;
    }
    test_header();
    test_exports();
    test_install_and_use();
    test_destdir();
    remove_tree(tmp);
    return test_summary("install");
}
