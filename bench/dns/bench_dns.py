#!/usr/bin/python3
"""Resolver benchmarks against a real DNS server (named) in a private
network namespace (the lab tests' dnslab.py).

    bench_dns.py BUILDDIR

1. Lookups per second: 20,000 distinct domains (d1..d20000.bulk.test, each
   with two MX hosts shared by all), cold cache, one process per run, at
   max_in_flight 1, 16 and 256 side by side; three runs each, median.
   Each destination costs one MX query (the shared hosts' A/AAAA are asked
   once), so this is the rate of MX resolutions end to end.
2. The cost of a cache hit: callgrind instruction counts of
   dns_resolve_cached() (10,000 calls, toggle-collect on the loop) for a
   2-host and a 5-host destination; beside it, the user-space
   instructions of a cold resolution (everything inside dns_loop_run()
   for 5,000 new domains: c-ares, parsing, cache, building; the kernel's
   share is not counted).
Prints a Markdown fragment for RESULTS.md.
"""
import json
import os
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'tests', 'lab', 'dns'))
from dnslab import DnsLab, SERVER  # noqa: E402

N = 20000
HITS = 10000


def main():
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else 'build-bench')
    load = os.path.join(build, 'bench', 'dns', 'dns-load')
    out = []
    with DnsLab() as lab:
        rates = {}
        for inflight in (1, 16, 256):
            c = lab.conf('b%d.conf' % inflight, '[dns]\nservers = %s\ntimeout = 5s\n'
                         'max_in_flight = %d\n' % (SERVER, inflight))
            runs = []
            for _ in range(3):
                r = json.loads(lab.run([load, '-c', c, '-n', str(N)]).stdout)
                assert r['ok'] == N, r
                runs.append(r)
            med = statistics.median(x['first_round_per_s'] for x in runs)
            rates[inflight] = (med, runs)
        out.append('| max_in_flight | lookups/s (median of 3) | runs | longest resolver call '
                   '(CPU ms, max of 3) | c-ares retries |')
        out.append('|---|---|---|---|---|')
        for k, (med, runs) in rates.items():
            out.append('| %d | %.0f | %s | %.2f | %d |' % (
                k, med, ', '.join('%.0f' % x['first_round_per_s'] for x in runs),
                max(x['loop_max_busy_cpu_ms'] for x in runs),
                sum(x['stats']['retries'] for x in runs)))
        out.append('')

        c = lab.conf('h.conf', '[dns]\nservers = %s\n' % SERVER)
        out.append('| cache hit (dns_resolve_cached) | hosts | instructions per call |')
        out.append('|---|---|---|')
        for dom, hosts in (('d1.bulk.test', 2), ('order.dns.test', 5)):
            r = lab.run(['valgrind', '--tool=callgrind', '--toggle-collect=bench_cached_hits',
                         '--callgrind-out-file=/dev/null', load, '-c', c, '-n', '1',
                         '--same', dom, '--hits', str(HITS)], timeout=300)
            m = re.search(r'Collected : (\d+)', r.stderr)
            res = json.loads(r.stdout)
            assert res['hit_hosts'] == hosts * HITS, res
            out.append('| %s | %d | %.0f |' % (dom, hosts, int(m.group(1)) / HITS))
        cold = 5000
        c = lab.conf('cold.conf', '[dns]\nservers = %s\nmax_in_flight = 64\n' % SERVER)
        r = lab.run(['valgrind', '--tool=callgrind', '--toggle-collect=dns_loop_run',
                     '--callgrind-out-file=/dev/null', load, '-c', c, '-n', str(cold),
                     '--prefix', 'd', '--suffix', '.bulk.test'], timeout=300)
        m = re.search(r'Collected : (\d+)', r.stderr)
        assert json.loads(r.stdout)['ok'] == cold
        out.append('| cold resolution, d*.bulk.test (whole loop, user space) | 2 | %.0f |'
                   % (int(m.group(1)) / cold))
    print('\n'.join(out))


if __name__ == '__main__':
    main()
