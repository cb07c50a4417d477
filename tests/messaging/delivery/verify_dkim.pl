#!/usr/bin/perl
# A second, independent DKIM verifier (Perl's Mail::DKIM, the one SpamAssassin and amavis use).
# Reads a message on stdin, fetches keys from the DNS server given as HOST PORT, prints
# "result<TAB>detail" for every signature.
use strict;
use warnings;
use Mail::DKIM::Verifier;
use Mail::DKIM::DNS;
use Net::DNS::Resolver;

my ($host, $port) = @ARGV;
Mail::DKIM::DNS::resolver(Net::DNS::Resolver->new(nameservers => [$host], port => $port, recurse => 0, udp_timeout => 2, tcp_timeout => 2, retry => 1));
my $dkim = Mail::DKIM::Verifier->new();
binmode STDIN;
while (<STDIN>) {
    $dkim->PRINT($_);
}
$dkim->CLOSE;
my @sigs = $dkim->signatures;
print "none\tno signature\n" unless @sigs;
foreach my $sig (@sigs) {
    print $sig->result, "\t", ($sig->result_detail // ""), "\n";
}
