# netbus top-level build. Everything lands in build/.
#   make            daemons, tools and test programs
#   make deps       install the Debian packages (as root), else print the line
#   make check      every test tier; make check-fast: all but realxen
#   make demo       the main job on xensim
#   make install    PREFIX=/usr/local DESTDIR=

PREFIX  ?= /usr/local
DESTDIR ?=
CC      ?= cc
SHELL   := /bin/bash
BUILD   := build

DEB_PACKAGES := build-essential pkg-config libxen-dev xenstore-utils libgnutls28-dev \
                libusb-1.0-0-dev libcunit1-dev liburing-dev clang \
                libclang-rt-14-dev iproute2 procps fio nbdkit umockdev libumockdev-dev \
                $(shell cat tests/realxen/host-packages)
PKGS    := xenstore xenevtchn xengnttab xencontrol libusb-1.0 liburing gnutls
TEST_PKGS := cunit

# pkg-config is only asked once the packages exist, so `make deps` works on
# a machine that has none of them yet.
pc_cflags = $(shell pkg-config --cflags $(1) 2>/dev/null)
pc_libs   = $(shell pkg-config --libs $(1) 2>/dev/null)

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wformat=2
CFLAGS  ?= -O2 -g
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) -MMD -MP \
             -I. -Ibackend/core -Ibackend/xenif -Ixenstore \
             $(call pc_cflags,$(PKGS))
LDLIBS_ALL = $(call pc_libs,$(PKGS)) -lpthread
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer \
             -fno-sanitize-recover=undefined

LIB_SRCS   := $(wildcard backend/core/*.c backend/xenif/*.c backend/vbd/*.c \
                backend/channel/*.c backend/vusb/*.c backend/vif/*.c xenstore/*.c)
NETBUSD_SRCS   := backend/netbusd.c
NETBUSCTL_SRCS := $(wildcard tools/netbusctl/*.c)
XENSIM_SRCS    := $(wildcard tools/xensim/*.c)
XENFRONT_SRCS  := $(wildcard tools/xenfront/*.c)
UNIT_SRCS      := $(wildcard tests/unit/*.c)

obj = $(patsubst %.c,$(BUILD)/$(1)/%.o,$(2))

PROGS := $(BUILD)/netbusd $(BUILD)/netbusctl $(BUILD)/xensim \
         $(if $(XENFRONT_SRCS),$(BUILD)/xenfront)
TESTS := $(BUILD)/unit-tests $(BUILD)/san/unit-tests

.PHONY: all deps check check-fast check-realxen check-unit check-interop \
        check-sim check-fuzz demo bench install clean fuzz usbdev
all: $(PROGS) $(TESTS)

# --- objects: plain and sanitized trees ---------------------------------
$(BUILD)/plain/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@
$(BUILD)/san/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN_FLAGS) $(call pc_cflags,$(TEST_PKGS)) -c $< -o $@

$(BUILD)/libnetbus.a: $(call obj,plain,$(LIB_SRCS))
	@rm -f $@; ar rcs $@ $^
$(BUILD)/san/libnetbus.a: $(call obj,san,$(LIB_SRCS))
	@rm -f $@; ar rcs $@ $^

$(BUILD)/netbusd: $(call obj,plain,$(NETBUSD_SRCS)) $(BUILD)/libnetbus.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS_ALL)
$(BUILD)/netbusctl: $(call obj,plain,$(NETBUSCTL_SRCS)) $(BUILD)/libnetbus.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS_ALL)
$(BUILD)/xensim: $(call obj,plain,$(XENSIM_SRCS)) $(BUILD)/libnetbus.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS_ALL)
$(BUILD)/xenfront: $(call obj,plain,$(XENFRONT_SRCS)) $(BUILD)/libnetbus.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS_ALL)

# Unit tests: one CUnit runner per build flavour; the sanitized one also
# links a sanitized xensim so forked servers are checked too.
$(BUILD)/unit-tests: $(call obj,plain,$(UNIT_SRCS) $(filter-out tools/xensim/main.c,$(XENSIM_SRCS))) $(BUILD)/libnetbus.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS_ALL) $(call pc_libs,$(TEST_PKGS))
$(BUILD)/san/unit-tests: $(call obj,san,$(UNIT_SRCS) $(filter-out tools/xensim/main.c,$(XENSIM_SRCS))) $(BUILD)/san/libnetbus.a
	$(CC) $(CFLAGS) $(SAN_FLAGS) -o $@ $^ $(LDLIBS_ALL) $(call pc_libs,$(TEST_PKGS))
$(BUILD)/san/xensim: $(call obj,san,$(XENSIM_SRCS)) $(BUILD)/san/libnetbus.a
	$(CC) $(CFLAGS) $(SAN_FLAGS) -o $@ $^ $(LDLIBS_ALL)
$(BUILD)/san/netbusd: $(call obj,san,$(NETBUSD_SRCS)) $(BUILD)/san/libnetbus.a
	$(CC) $(CFLAGS) $(SAN_FLAGS) -o $@ $^ $(LDLIBS_ALL)
$(BUILD)/san/netbusctl: $(call obj,san,$(NETBUSCTL_SRCS)) $(BUILD)/san/libnetbus.a
	$(CC) $(CFLAGS) $(SAN_FLAGS) -o $@ $^ $(LDLIBS_ALL)
$(BUILD)/san/xenfront: $(call obj,san,$(XENFRONT_SRCS)) $(BUILD)/san/libnetbus.a
	$(CC) $(CFLAGS) $(SAN_FLAGS) -o $@ $^ $(LDLIBS_ALL)
SAN_PROGS := $(patsubst $(BUILD)/%,$(BUILD)/san/%,$(PROGS))

# libFuzzer targets: each tests/fuzz/NAME.c is built with clang against the
# library sources, instrumented.
FUZZ_SRCS  := $(wildcard tests/fuzz/*.c)
FUZZ_PROGS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRCS))
FUZZ_TIME  ?= 12
$(BUILD)/fuzz/%: tests/fuzz/%.c $(LIB_SRCS)
	@mkdir -p $(dir $@)
	clang -std=c11 -D_GNU_SOURCE $(WARN) -g -O1 -I. -Ibackend/core -Ibackend/xenif -Ixenstore \
	    $(call pc_cflags,$(PKGS)) -fsanitize=fuzzer,address,undefined -o $@ $< $(LIB_SRCS) $(LDLIBS_ALL)
fuzz: $(FUZZ_PROGS)

# --- usbdev: the test USB devices under umockdev (tests/usbdev/README.md) -
USBDEV_PKGS  := umockdev-1.0 glib-2.0 gobject-2.0 gio-2.0
USBDEV_SRCS  := $(filter-out tests/usbdev/check.c,$(wildcard tests/usbdev/*.c))
USBDEV_PROGS := $(BUILD)/usbdev $(BUILD)/usbdev-check $(BUILD)/san/usbdev-check
USBDEV_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS)
$(BUILD)/usbdev: $(USBDEV_SRCS) tests/usbdev/usbdev.h
	@mkdir -p $(dir $@)
	$(CC) $(USBDEV_CFLAGS) $(call pc_cflags,$(USBDEV_PKGS)) -o $@ $(USBDEV_SRCS) $(call pc_libs,$(USBDEV_PKGS))
$(BUILD)/usbdev-check: tests/usbdev/check.c
	@mkdir -p $(dir $@)
	$(CC) $(USBDEV_CFLAGS) $(call pc_cflags,libusb-1.0) -o $@ $< $(call pc_libs,libusb-1.0)
$(BUILD)/san/usbdev-check: tests/usbdev/check.c
	@mkdir -p $(dir $@)
	$(CC) $(USBDEV_CFLAGS) $(SAN_FLAGS) $(call pc_cflags,libusb-1.0) -o $@ $< $(call pc_libs,libusb-1.0)
usbdev: $(USBDEV_PROGS)

# --- set-up -------------------------------------------------------------
deps:
	@missing=$$(for p in $(DEB_PACKAGES); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -z "$$missing" ]; then echo "deps: all Debian packages present"; \
	elif [ "$$(id -u)" = 0 ]; then \
	    echo "deps: installing $$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else echo "deps: missing packages; run as root:"; \
	    echo "  apt-get install -y $$missing"; exit 1; fi

# The build needs the packages: make the top-level entry points install them
# first (a no-op once present).
check check-fast demo bench: | deps

# The test tiers run one after another, but each builds what it needs with a
# job per CPU (about half the time on 2 CPUs), unless make was given -j.
NPROC   := $(shell nproc 2>/dev/null || echo 1)
SUBMAKE  = $(MAKE) --no-print-directory $(if $(filter -j%,$(MAKEFLAGS)),,-j$(NPROC))
SIM_LANES ?= 2

# --- tests --------------------------------------------------------------
check: check-fast check-realxen
check-fast: check-unit check-interop check-sim check-fuzz

check-unit: deps
	@$(SUBMAKE) $(TESTS) $(PROGS) $(BUILD)/san/xensim
	@echo "== unit tests (plain build) =="
	XENSIM_BIN=$(BUILD)/xensim $(BUILD)/unit-tests
	@echo "== unit tests (AddressSanitizer + UBSan) =="
	XENSIM_BIN=$(BUILD)/san/xensim ASAN_OPTIONS=detect_leaks=1 $(BUILD)/san/unit-tests

check-interop: deps
	@$(SUBMAKE) $(PROGS) $(BUILD)/san/xensim
	@echo "== interop: Debian's xenstore-* tools against our xenstored =="
	XENSIM_BIN=$(BUILD)/san/xensim tests/interop/xenstore-utils.sh

# The sim tier runs the sanitized daemons and tools: a leak or an undefined
# behaviour in netbusd, xensim or the frontends fails it. SIM_LANES scripts
# run side by side (tests/sim/run-all.sh).
check-sim: deps
	@$(SUBMAKE) $(SAN_PROGS) $(USBDEV_PROGS)
	@echo "== sim: xensim hosts (AddressSanitizer + UBSan binaries) =="
	ASAN_OPTIONS=detect_leaks=1 tests/sim/run-all.sh $(BUILD)/san $(SIM_LANES)

check-fuzz: deps
	@$(SUBMAKE) fuzz
	@echo "== fuzz: each libFuzzer target for $(FUZZ_TIME) s =="
	@for f in $(FUZZ_PROGS); do echo "-- $$f"; \
	    $$f -max_total_time=$(FUZZ_TIME) -print_final_stats=1 2>&1 | grep -E 'stat::number_of_executed_units|ERROR|SUMMARY' ; \
	    test $${PIPESTATUS[0]} -eq 0 || exit 1; done

# Xen 4.17 + a Debian dom0 booted in QEMU (software emulation); Linux's
# xen-blkfront against this tree's netbusd. Images are cached, see
# tests/realxen/run.sh.
check-realxen: deps
	@$(SUBMAKE) $(PROGS) frontend-modules
	@echo "== realxen: Xen 4.17 + Debian dom0 in QEMU, Linux frontends against netbusd =="
	tests/realxen/run.sh $(BUILD)

# --- Linux frontend modules ------------------------------------------------
# $(BUILD)/frontend/xen-hcd.ko: Linux 6.1's xen-hcd with frontend-patches/linux
# applied, built out of tree against Debian's headers (unpacked once into the
# realxen cache); the realxen guests load it.
.PHONY: frontend-modules
frontend-modules:
	@$(MAKE) --no-print-directory -C frontend-patches/linux O=$(abspath $(BUILD))/frontend

demo: deps
	@$(SUBMAKE) $(PROGS)
	tools/demo.sh $(BUILD)

bench: deps
	@$(SUBMAKE) $(PROGS) $(BUILD)/usbdev
	tests/bench/run.sh $(BUILD) $(ONLY)

# --- install ------------------------------------------------------------
MANPAGES := $(wildcard tools/man/*.[18])
XEN_SCRIPTS_DIR ?= /etc/xen/scripts
install: $(PROGS)
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin \
	           $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man8
	install -m 755 $(BUILD)/netbusd $(DESTDIR)$(PREFIX)/sbin/netbusd
	install -m 755 $(BUILD)/netbusctl $(DESTDIR)$(PREFIX)/sbin/netbusctl
	install -m 755 $(BUILD)/xensim $(DESTDIR)$(PREFIX)/bin/xensim
	for m in $(MANPAGES); do sec=$${m##*.}; \
	    install -m 644 $$m $(DESTDIR)$(PREFIX)/share/man/man$$sec/; done
	install -d $(DESTDIR)$(XEN_SCRIPTS_DIR) $(DESTDIR)$(PREFIX)/share/doc/netbus
	install -m 755 tools/hotplug/netbus-block $(DESTDIR)$(XEN_SCRIPTS_DIR)/netbus-block
	install -m 644 tools/netbusd.conf.example $(DESTDIR)$(PREFIX)/share/doc/netbus/

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/plain $(BUILD)/san -name '*.d' -type f 2>/dev/null)
