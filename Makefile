# libkne build. `make` builds build/libkne.so and the kne CLI; `make check` runs every test.
# Variables: TORCH_DIR=/path/to/torch (a python torch or libtorch tree, e.g. with CUDA);
# PREFIX, DESTDIR for install; SANITIZE=address|thread for a sanitizer build (into build-$(SANITIZE)).

VERSION_MAJOR := $(shell sed -n 's/^\#define KNE_VERSION_MAJOR \([0-9]*\)/\1/p' include/kne.h)
VERSION_MINOR := $(shell sed -n 's/^\#define KNE_VERSION_MINOR \([0-9]*\)/\1/p' include/kne.h)
VERSION_PATCH := $(shell sed -n 's/^\#define KNE_VERSION_PATCH \([0-9]*\)/\1/p' include/kne.h)
VERSION := $(VERSION_MAJOR).$(VERSION_MINOR).$(VERSION_PATCH)

PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR ?= $(PREFIX)/bin
SHARED ?= ../shared
PYTHON ?= /usr/bin/python3

ifdef SANITIZE
B ?= build-$(SANITIZE)
SANFLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -g
else
B ?= build
SANFLAGS :=
endif

CC ?= cc
CXX ?= g++
OPT ?= -O2 -g
WARN := -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers
CPPFLAGS_COMMON := -Iinclude -Ilib -Ishim -DKNE_BUILDING -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE
CFLAGS_LIB := -std=c99 $(OPT) $(WARN) -fPIC -fvisibility=hidden $(SANFLAGS) $(CPPFLAGS_COMMON) \
              $(shell pkg-config --cflags json-c libpcre2-8 libutf8proc 2>/dev/null)

# libtorch: Debian's libtorch-dev by default, or TORCH_DIR (python torch / libtorch tree).
ifdef TORCH_DIR
TORCH_INC := -I$(TORCH_DIR)/include -I$(TORCH_DIR)/include/torch/csrc/api/include
TORCH_CUDA_LIBS := $(if $(wildcard $(TORCH_DIR)/lib/libtorch_cuda.so),-ltorch_cuda -lc10_cuda,)
TORCH_LIBS := -L$(TORCH_DIR)/lib -Wl,-rpath,$(TORCH_DIR)/lib -Wl,--no-as-needed -ltorch -ltorch_cpu $(TORCH_CUDA_LIBS) -lc10 -Wl,--as-needed
TORCH_DEFS := -D_GLIBCXX_USE_CXX11_ABI=1
else
TORCH_INC := -isystem /usr/include/torch/csrc/api/include
TORCH_LIBS := -Wl,--no-as-needed -ltorch -ltorch_cpu -lc10 -Wl,--as-needed
TORCH_DEFS :=
endif
CXXFLAGS_SHIM := -std=c++17 $(OPT) -Wall -Wextra -Wno-unused-parameter -fPIC -fvisibility=hidden \
                 $(SANFLAGS) $(CPPFLAGS_COMMON) $(TORCH_INC) $(TORCH_DEFS)

LIBS := $(TORCH_LIBS) $(shell pkg-config --libs json-c libpcre2-8 libutf8proc 2>/dev/null || echo -ljson-c -lpcre2-8 -lutf8proc) -lm -lpthread

# DEPS_DIR: a root where the Debian packages of json-c, PCRE2 and utf8proc were unpacked
# (scripts/prepare-device.sh), for machines without them installed (the GPU machine).
ifdef DEPS_DIR
DEPS_LIBDIR := $(DEPS_DIR)/usr/lib/x86_64-linux-gnu
CFLAGS_LIB += -I$(DEPS_DIR)/usr/include -I$(DEPS_DIR)/usr/include/json-c
LIBS += -L$(DEPS_LIBDIR) -Wl,-rpath,$(DEPS_LIBDIR)
endif

LIB_SRC := $(wildcard lib/*.c)
SHIM_SRC := $(wildcard shim/*.cpp)
LIB_OBJ := $(LIB_SRC:%.c=$(B)/obj/%.o)
SHIM_OBJ := $(SHIM_SRC:%.cpp=$(B)/obj/%.o)
SONAME := libkne.so.$(VERSION_MAJOR)
LIBREAL := $(B)/libkne.so.$(VERSION)

CLI_SRC := $(wildcard cli/*.c)
TEST_SRC := $(wildcard test/test_*.c)
TEST_BIN := $(TEST_SRC:test/%.c=$(B)/test/%)
BENCH_SRC := $(wildcard bench/bench_*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(B)/bench/%)
EXAMPLE_C := $(wildcard examples/*.c)
EXAMPLE_CXX := $(wildcard examples/*.cpp)
EXAMPLE_BIN := $(EXAMPLE_C:examples/%.c=$(B)/examples/%) $(EXAMPLE_CXX:examples/%.cpp=$(B)/examples/%_cpp)

# Programs link the library through the build tree (rpath), as a user would.
PROG_CFLAGS := -std=c99 $(OPT) $(WARN) $(SANFLAGS) -Iinclude -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE
PROG_LDFLAGS := $(SANFLAGS) -L$(B) -Wl,-rpath,$(abspath $(B)) -lkne -lm -lpthread

.PHONY: all lib cli tests bench examples check install uninstall clean tsan asan demo
all: lib cli

lib: $(B)/libkne.so

$(B)/obj/lib/%.o: lib/%.c $(wildcard include/*.h lib/*.h shim/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_LIB) -c $< -o $@

$(B)/obj/shim/%.o: shim/%.cpp $(wildcard shim/*.h shim/*.hpp)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS_SHIM) -c $< -o $@

$(LIBREAL): $(LIB_OBJ) $(SHIM_OBJ) lib/exports.map
	$(CXX) -shared -Wl,-soname,$(SONAME) -Wl,--version-script=lib/exports.map -Wl,--no-undefined $(SANFLAGS) \
	    -o $@ $(LIB_OBJ) $(SHIM_OBJ) $(LIBS)

$(B)/libkne.so: $(LIBREAL)
	ln -sf libkne.so.$(VERSION) $(B)/$(SONAME)
	ln -sf $(SONAME) $@

cli: $(B)/kne
$(B)/kne: $(CLI_SRC) $(B)/libkne.so $(wildcard cli/*.h)
	$(CC) $(PROG_CFLAGS) -Icli $(shell pkg-config --cflags json-c) $(CLI_SRC) -o $@ $(PROG_LDFLAGS) -ljson-c

tests: $(TEST_BIN)
$(B)/test/%: test/%.c test/test.h $(B)/libkne.so
	@mkdir -p $(dir $@)
	$(CC) $(PROG_CFLAGS) -Ilib -Ishim $(shell pkg-config --cflags json-c) $< -o $@ $(PROG_LDFLAGS) -ljson-c

bench: $(BENCH_BIN)
$(B)/bench/%: bench/%.c $(B)/libkne.so
	@mkdir -p $(dir $@)
	$(CC) $(PROG_CFLAGS) $< -o $@ $(PROG_LDFLAGS)

examples: $(EXAMPLE_BIN)
$(B)/examples/%: examples/%.c $(B)/libkne.so
	@mkdir -p $(dir $@)
	$(CC) $(PROG_CFLAGS) $< -o $@ $(PROG_LDFLAGS)
$(B)/examples/%_cpp: examples/%.cpp $(B)/libkne.so
	@mkdir -p $(dir $@)
	$(CXX) -std=c++17 $(OPT) -Wall -Wextra -Iinclude $< -o $@ $(PROG_LDFLAGS)

# The main job: edit one fact of a testbed model, print the answer before and after.
demo: all examples
	$(B)/examples/edit $(SHARED)/models/kne-llama-tiny

check: all tests examples
	B=$(B) SHARED=$(SHARED) PYTHON=$(PYTHON) sh test/run_all.sh

tsan:
	$(MAKE) SANITIZE=thread tests
	B=build-thread SHARED=$(SHARED) sh test/run_all.sh test_threads

# AddressSanitizer over every test and example (the Python tests need an ASan python: skipped)
asan:
	$(MAKE) SANITIZE=address all tests examples
	ASAN_OPTIONS=detect_leaks=0 SKIP_PYTHON=1 B=build-address SHARED=$(SHARED) sh test/run_all.sh

kne.pc: pkgconfig/kne.pc.in include/kne.h
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' \
	    -e 's|@VERSION@|$(VERSION)|g' $< > $(B)/kne.pc

install: lib cli
	@mkdir -p $(B)
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' \
	    -e 's|@VERSION@|$(VERSION)|g' pkgconfig/kne.pc.in > $(B)/kne.pc
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(BINDIR)
	install -m 644 include/kne.h $(DESTDIR)$(INCLUDEDIR)/kne.h
	install -m 755 $(LIBREAL) $(DESTDIR)$(LIBDIR)/
	ln -sf libkne.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libkne.so
	install -m 644 $(B)/kne.pc $(DESTDIR)$(LIBDIR)/pkgconfig/kne.pc
	install -m 755 $(B)/kne $(DESTDIR)$(BINDIR)/kne

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/kne.h $(DESTDIR)$(LIBDIR)/libkne.so* $(DESTDIR)$(LIBDIR)/pkgconfig/kne.pc $(DESTDIR)$(BINDIR)/kne

clean:
	rm -rf build build-thread build-address
