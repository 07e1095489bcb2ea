#!/usr/bin/perl
# netpeer.pl: small TCP peers for the multi-host sim tests (perl-base only).
# Every mode is bounded in time and only talks to the address it is given
# (a simulated host's address inside the test's namespaces, or loopback).
#   listen ADDR PORT SECS          accept one connection, print what it
#                                  sent (up to 64 KiB), exit 0; 1 on timeout
#   connect ADDR PORT SECS TEXT    connect, send TEXT, exit 0; 1 if no
#                                  connection within SECS
#   garbage ADDR PORT SECS N OUT   N connections sending junk (random bytes,
#                                  a header-shaped prefix with absurd
#                                  lengths, a flood, a half-sent frame);
#                                  everything the server answered is
#                                  appended to OUT; exit 0
#   proxy LADDR LPORT TADDR TPORT SECS OUT
#                                  forward one connection from LADDR:LPORT to
#                                  TADDR:TPORT; the bytes the target sends are
#                                  appended to OUT (hex lines "<- XX..."),
#                                  the client's as "-> XX..."; exit when
#                                  either side closes or after SECS
use strict;
use warnings;
use IO::Socket::INET;
use IO::Select;

my $mode = shift @ARGV // '';
$SIG{ALRM} = sub { print STDERR "netpeer $mode: time limit\n"; exit 1 };

sub connect_to {
    my ($addr, $port, $secs) = @_;
    my $end = time + $secs;
    while (time <= $end) {
        my $s = IO::Socket::INET->new(PeerAddr => $addr, PeerPort => $port,
                                      Proto => 'tcp', Timeout => 2);
        return $s if $s;
        select(undef, undef, undef, 0.1);
    }
    return undef;
}

sub drain {    # what the peer sends within $secs, up to 1 MiB
    my ($s, $secs) = @_;
    my $sel = IO::Select->new($s);
    my $got = '';
    my $end = time + $secs;
    while (time < $end && length($got) < (1 << 20)) {
        last unless $sel->can_read(0.5);
        my $n = sysread($s, my $buf, 65536);
        last unless $n;
        $got .= $buf;
    }
    return $got;
}

if ($mode eq 'listen') {
    my ($addr, $port, $secs) = @ARGV;
    alarm($secs);
    my $l = IO::Socket::INET->new(LocalAddr => $addr, LocalPort => $port,
                                  Proto => 'tcp', Listen => 4, ReuseAddr => 1)
        or die "netpeer listen $addr:$port: $!\n";
    print "listening\n";
    STDOUT->flush;
    my $c = $l->accept or exit 1;
    print drain($c, 2);
    exit 0;
} elsif ($mode eq 'connect') {
    my ($addr, $port, $secs, $text) = @ARGV;
    alarm($secs + 3);
    my $s = connect_to($addr, $port, $secs) or exit 1;
    print $s $text;
    close $s;
    exit 0;
} elsif ($mode eq 'garbage') {
    my ($addr, $port, $secs, $n, $out) = @ARGV;
    alarm($secs);
    open(my $log, '>>', $out) or die "netpeer: $out: $!\n";
    binmode $log;
    srand(7797);
    for my $i (1 .. $n) {
        my $s = connect_to($addr, $port, 3) or next;
        $SIG{PIPE} = 'IGNORE';
        my $kind = $i % 5;
        my $junk;
        if ($kind == 0) {        # random bytes
            $junk = join '', map { chr(int(rand(256))) } 1 .. 4096;
        } elsif ($kind == 1) {   # "NBUS", version 1, any type, huge length
            $junk = pack('a4 C C v V V Q<', 'NBUS', 1, int(rand(256)), 0xffff,
                         0xffffffff, 0xfffffff0, 0) x 4;
        } elsif ($kind == 2) {   # a flood of zeroes
            $junk = "\0" x (256 * 1024);
        } elsif ($kind == 3) {   # an HTTP request
            $junk = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        } else {                 # a header promising a payload never sent
            $junk = pack('a4 C C v V V Q<', 'NBUS', 1, 1, 0, 0, 200, 1);
        }
        syswrite($s, $junk);
        print $log drain($s, 1);
        close $s;
    }
    exit 0;
} elsif ($mode eq 'proxy') {
    my ($laddr, $lport, $taddr, $tport, $secs, $out) = @ARGV;
    alarm($secs);
    open(my $log, '>>', $out) or die "netpeer: $out: $!\n";
    $log->autoflush(1);
    my $l = IO::Socket::INET->new(LocalAddr => $laddr, LocalPort => $lport,
                                  Proto => 'tcp', Listen => 4, ReuseAddr => 1)
        or die "netpeer proxy $laddr:$lport: $!\n";
    print "listening\n";
    STDOUT->flush;
    my $c = $l->accept or exit 1;
    my $t = connect_to($taddr, $tport, 3) or exit 1;
    my $sel = IO::Select->new($c, $t);
    for (;;) {
        for my $s ($sel->can_read(1)) {
            my $n = sysread($s, my $buf, 65536);
            exit 0 unless $n;
            my $to = $s == $c ? $t : $c;
            print $log ($s == $t ? '<- ' : '-> '), unpack('H*', $buf), "\n";
            syswrite($to, $buf);
        }
    }
    exit 0;
}
print STDERR "usage: netpeer.pl listen|connect|garbage|proxy ARGS (see the file)\n";
exit 2;
