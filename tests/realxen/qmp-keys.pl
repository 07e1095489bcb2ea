#!/usr/bin/perl
# Host side of scenario usb's keyboard checks: dom0 cannot press a key, so
# it prints "KEYS N" on its console and this types the key "a" N times on
# QEMU's emulated USB keyboard, through QMP's send-key.
# Usage: qmp-keys.pl LOG QMP-SOCKET   (follows LOG until killed)
use strict;
use warnings;
use IO::Socket::UNIX;
use Time::HiRes qw(sleep);

my ($log, $sock_path) = @ARGV;
die "usage: qmp-keys.pl LOG QMP-SOCKET\n" unless defined $sock_path;
$| = 1;
my $qmp;

# One command and its answer ("return" or "error"; events may come first).
sub qmp_do {
    my ($json) = @_;
    print $qmp "$json\n";
    while (defined(my $line = <$qmp>)) {
        return 1 if $line =~ /"return"/;
        if ($line =~ /"error"/) { warn "qmp-keys: $json: $line"; return 0; }
    }
    warn "qmp-keys: QMP closed the connection\n";
    return 0;
}

sub qmp_open {
    return 1 if $qmp;
    $qmp = IO::Socket::UNIX->new(Peer => $sock_path)
        or do { warn "qmp-keys: connect $sock_path: $!\n"; return 0 };
    <$qmp>;    # the greeting
    return qmp_do('{"execute":"qmp_capabilities"}');
}

sub type_keys {
    my ($n) = @_;
    qmp_open() or return;
    for (1 .. $n) {
        qmp_do('{"execute":"send-key","arguments":{"keys":[{"type":"qcode","data":"a"}],"hold-time":50}}')
            or return;
        sleep 0.2;
    }
    print "qmp-keys: typed \"a\" $n times\n";
}

# Follow the log as tee writes it (tail -F without the pipes to clean up).
my $pos = 0;
my $partial = '';
while (1) {
    if (open(my $fh, '<', $log)) {
        $pos = 0 if -s $fh < $pos;    # truncated: a new run
        seek($fh, $pos, 0);
        my $chunk = do { local $/; <$fh> } // '';
        $pos += length $chunk;
        close $fh;
        my @lines = split /\n/, $partial . $chunk, -1;
        $partial = pop(@lines) // '';
        for (@lines) { type_keys($1) if /^KEYS (\d+)\s*$/; }
    }
    sleep 0.3;
}
