#!/usr/bin/python3
"""Lab tests for dns/: the resolver against a real DNS server (named) in a
private network namespace, zones made by dnslab.py.

    test_dns_lab.py SCENARIO DMTA_ROUTE DNS_LOAD
    SCENARIO: routing | cache | faults | load
"""
import collections
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dnslab import DnsLab, SERVER, SLOW, DEAD, BAD, CUT  # noqa: E402

FAILS = []


def check(cond, what, got=None, want=None):
    if cond:
        print('ok   ' + what + ('' if got is None or isinstance(got, dict) else ' [%r]' % (got,)))
    else:
        msg = 'FAIL ' + what
        if got is not None or want is not None:
            msg += ': got %r, want %r' % (got, want)
        print(msg)
        FAILS.append(what)


class Env:
    def __init__(self, lab, route, load):
        self.lab, self.route_bin, self.load_bin = lab, route, load
        self.n = 0

    def conf(self, text, servers=SERVER):
        self.n += 1
        return self.lab.conf('c%d.conf' % self.n, '[dns]\nservers = %s\n%s' % (servers, text))

    def route(self, conf, *domains, stats=False):
        """dmta-route --json: (list of destinations, stats or None, seconds)."""
        argv = [self.route_bin, '-c', conf, '--json'] + (['--stats'] if stats else [])
        t0 = time.monotonic()
        r = self.lab.run(argv + list(domains), check=False)
        dt = time.monotonic() - t0
        if r.returncode not in (0, 1):
            raise RuntimeError('dmta-route failed (%d): %s' % (r.returncode, r.stderr))
        lines = [json.loads(x) for x in r.stdout.splitlines()]
        st = lines.pop()['stats'] if stats else None
        return lines, st, dt

    def one(self, conf, domain):
        d, _, dt = self.route(conf, domain)
        return d[0], dt

    def load(self, conf, *args):
        r = self.lab.run([self.load_bin, '-c', conf] + list(args), check=False, timeout=100)
        if r.returncode != 0:
            print(r.stderr)
        return json.loads(r.stdout)


def names(d):
    return [h['name'] for h in d['hosts']]


def t(s):
    return s + '.dns.test'


def routing(env):
    c = env.conf('')
    # Ordering and shuffling of equal preferences, cache hits included.
    n = 300
    dests, st, _ = env.route(c, *([t('order')] * n), stats=True)
    firsts = collections.Counter()
    perms = set()
    good = True
    for d in dests:
        prefs = [h['pref'] for h in d['hosts']]
        hn = names(d)
        good &= prefs == [5, 10, 10, 10, 20] and hn[0] == 'e.mx.dns.test' and \
            hn[4] == 'd.mx.dns.test' and sorted(hn[1:4]) == ['a.mx.dns.test', 'b.mx.dns.test',
                                                              'c.mx.dns.test']
        firsts[hn[1]] += 1
        perms.add(tuple(hn[1:4]))
    check(good, 'order: %d lookups all sorted by preference (5, 10, 10, 10, 20)' % n)
    check(len(perms) == 6, 'order: all 6 orders of the three preference-10 hosts seen',
          len(perms), 6)
    check(all(firsts[x] >= n / 3 * 0.6 for x in ('a.mx.dns.test', 'b.mx.dns.test',
                                                 'c.mx.dns.test')),
          'order: each preference-10 host first among equals about a third of the time',
          dict(firsts))
    check(st['queries'] == 11, 'order: %d lookups cost one query per record set' % n,
          st['queries'], 11)
    d = dests[0]
    check(d['verdict'] == 'ok' and d['status'] == '2.0.0' and d['source'] == 'mx',
          'order: ok via mx', (d['verdict'], d['status'], d['source']))
    e = d['hosts'][0]
    check(e['ipv4'] == ['198.18.1.5'] and e['ipv6'] == ['2001:db8::5'] and e['port'] == 25,
          'order: addresses v4 and v6 kept per host', e)
    # the negative AAAA answers (SOA minimum 60) bound the destination's TTL
    check(d['ttl'] == 60, 'order: ttl is the smallest of the sets used', d['ttl'], 60)

    dd, _, _ = env.route(c, 'd1.bulk.test', 'd2.bulk.test', t('aliasdom'), t('many'))
    check(dd[0]['site'] == dd[1]['site'] and dd[2]['site'] == dests[0]['site'] and
          dd[3]['site'] != dests[0]['site'] and dd[0]['site'] != dests[0]['site'],
          'site: domains sharing exchangers share a site key, others do not',
          [x['site'] for x in dd])

    d, _ = env.one(c, t('aliasdom'))
    check(d['verdict'] == 'ok' and d['hosts'][0]['name'] == 'e.mx.dns.test',
          'aliasdom: the domain itself a CNAME: MX of its target', names(d))

    d, _ = env.one(c, t('xzone'))
    check(d['verdict'] == 'ok' and sorted(names(d)) == ['mx1.bulk.test', 'mx2.bulk.test'],
          'xzone: a CNAME into another zone, answered alone, followed by a second query', d)
    check(re.search(r'd7\.bulk\.test IN MX', env.lab.querylog()) is not None,
          'xzone: named was asked for the CNAME target')

    d, _ = env.one(c, t('implicit'))
    check(d['verdict'] == 'ok' and d['source'] == 'implicit' and
          names(d) == ['implicit.dns.test'] and d['hosts'][0]['ipv4'] == ['198.18.2.1'],
          'implicit: no MX, the domain\'s own A', d)

    d, _ = env.one(c, t('nullmx'))
    check(d['verdict'] == 'permanent' and d['status'] == '5.1.10' and not d['hosts'],
          'nullmx: permanent 5.1.10', (d['verdict'], d['status']))

    d, _ = env.one(c, t('nxdomain'))
    check(d['verdict'] == 'permanent' and d['status'] == '5.1.2' and d['ttl'] == 60,
          'NXDOMAIN: permanent 5.1.2 with the SOA negative TTL',
          (d['verdict'], d['status'], d['ttl']))

    d, _ = env.one(c, t('cnamemx'))
    check(d['verdict'] == 'ok' and names(d) == ['alias.mx.dns.test'] and
          d['hosts'][0]['ipv4'] == ['198.18.3.1'], 'cnamemx: a CNAME\'d MX host followed', d)

    d, _ = env.one(c, t('noaddr'))
    check(d['verdict'] == 'ok' and names(d) == ['b.mx.dns.test'] and d['skipped'] == 1,
          'noaddr: MX host without address skipped, the next used', d)

    d, _ = env.one(c, t('allnoaddr'))
    check(d['verdict'] == 'permanent' and d['status'] == '5.4.4' and d['skipped'] == 2,
          'allnoaddr: no MX host with an address: permanent 5.4.4', d)

    dd, st, _ = env.route(c, t('bogus'), stats=True)
    check(dd[0]['verdict'] == 'ok' and names(dd[0]) == ['b.mx.dns.test'] and
          st['bad_addrs'] == 2, 'bogus: an exchanger at 0.0.0.0 and 224.0.0.1 only: skipped,'
          ' the addresses counted', (names(dd[0]), st['bad_addrs']))

    d, _ = env.one(c, t('literal'))
    check(d['verdict'] == 'ok' and names(d) == ['b.mx.dns.test'] and d['skipped'] == 1,
          'literal: an IP-literal MX target skipped', d)

    d, _ = env.one(c, t('bare'))
    check(d['verdict'] == 'permanent' and d['status'] == '5.4.4',
          'bare: no MX and no address: permanent 5.4.4', (d['verdict'], d['status']))

    d, _ = env.one(c, t('v6only'))
    check(d['verdict'] == 'temporary' and d['status'] == '4.4.4' and
          d['hosts'][0]['ipv6'] == ['2001:db8::1'], 'v6only: kept, but temporary 4.4.4', d)

    d, _ = env.one(c, t('many'))
    check(d['verdict'] == 'ok' and [h['pref'] for h in d['hosts']] == list(range(1, 11)) and
          d['skipped'] == 10, '20 MX records: the best max_mx=10 kept, in order',
          [h['pref'] for h in d['hosts']])
    c20 = env.conf('max_mx = 20\n')
    d, _ = env.one(c20, t('many'))
    check([h['pref'] for h in d['hosts']] == list(range(1, 21)) and
          all(len(h['ipv4']) == 1 for h in d['hosts']),
          '20 MX records: all 20 with max_mx=20', len(d['hosts']))

    # Truncation: 100 A records do not fit in 512 bytes of UDP.
    d, _ = env.one(c, t('big'))
    check(d['verdict'] == 'ok' and len(d['hosts'][0]['ipv4']) == 8,
          'big: addresses per host bounded by max_addrs=8', len(d['hosts'][0]['ipv4']))
    cbig = env.conf('max_addrs = 100\n')
    d, _ = env.one(cbig, t('big'))
    got = sorted(d['hosts'][0]['ipv4'])
    check(got == sorted('198.18.4.%d' % i for i in range(1, 101)),
          'big: all 100 A records arrive (over TCP after a truncated UDP reply)', len(got))
    log = env.lab.querylog()
    check(re.search(r'big\.mx\.dns\.test IN A \+\S*T', log) is not None,
          'big: named saw the A query over TCP')

    d, _ = env.one(c, '[198.18.9.9]')
    check(d['verdict'] == 'ok' and d['source'] == 'literal' and
          d['hosts'][0]['ipv4'] == ['198.18.9.9'], 'address literal domain', d)
    d, _ = env.one(c, 'bad..name')
    check(d['verdict'] == 'permanent' and d['status'] == '5.1.2', 'bad domain name: 5.1.2', d)

    # RFC 5321 §5.1: this host among the exchangers.
    cl = env.conf('local_names = C.mx.dns.test, other.example\n')
    dests, _, _ = env.route(cl, *([t('order')] * 20))
    check(all(names(x)[0] == 'e.mx.dns.test' and len(x['hosts']) == 1 and x['skipped'] == 4
              for x in dests),
          'local_names: only exchangers more preferred than this host kept (pref 5 of 5/10/20)',
          [names(x) for x in dests[:2]])
    cl = env.conf('local_names = e.mx.dns.test\n')
    d, _ = env.one(cl, t('order'))
    check(d['verdict'] == 'permanent' and d['status'] == '5.4.6',
          'local_names: this host is the best MX: a loop, permanent 5.4.6', d['reason'])

    # Overrides.
    cr = env.conf('[routes]\n%s = 198.18.9.1:2525, b.mx.dns.test\n.sub.dns.test = a.mx.dns.test\n'
                  % t('order'))
    dests, st, _ = env.route(cr, t('order'), 'x.y.sub.dns.test', t('implicit'), stats=True)
    d = dests[0]
    check(d['source'] == 'route' and names(d) == ['198.18.9.1', 'b.mx.dns.test'] and
          d['hosts'][0]['port'] == 2525 and d['hosts'][0]['ipv4'] == ['198.18.9.1'] and
          d['hosts'][1]['ipv4'] == ['198.18.1.2'], 'route: static hosts in order, port kept', d)
    check(dests[1]['source'] == 'route' and names(dests[1]) == ['a.mx.dns.test'],
          'route: .sub.dns.test covers subdomains', dests[1])
    check(dests[2]['source'] == 'implicit', 'route: other domains still use DNS', dests[2])
    crl = env.conf('[relay]\nhost = 198.18.9.9:587\n')
    dests, st, _ = env.route(crl, t('order'), t('nxdomain'), stats=True)
    check(all(x['source'] == 'relay' and x['verdict'] == 'ok' and
              x['hosts'][0]['port'] == 587 for x in dests) and st['queries'] == 0,
          'relay: every domain to the smarthost, no DNS query', (dests, st))

    # In-flight deduplication: 1000 requests at once, the queries of one.
    r = env.load(c, '-n', '1000', '--same', t('order'))
    check(r['ok'] == 1000 and r['stats']['queries'] == 11,
          'dedup: 1000 simultaneous requests for one domain make 11 queries (MX + 5 x A/AAAA),'
          ' as one request does', r['stats']['queries'], 11)
    r = env.load(c, '-n', '1000', '--same', t('nullmx'))
    check(r['perm'] == 1000 and r['stats']['queries'] == 1,
          'dedup: 1000 simultaneous requests for a null-MX domain: one query',
          r['stats']['queries'], 1)


def cache(env):
    # short.dns.test: MX TTL 2 s; its host a.mx: A TTL 300, AAAA NODATA
    # (negative TTL 60 from the SOA).
    c = env.conf('ttl_min = 1s\n')
    r = env.load(c, '-n', '1', '--same', t('short'), '--rounds', '2', '--pause-ms', '2500')
    check(r['ok'] == 2 and r['stats']['queries'] == 4,
          'TTL 2 s honoured: after 2.5 s only the MX is asked again (3 + 1 queries)',
          r['stats']['queries'], 4)
    c = env.conf('')
    r = env.load(c, '-n', '1', '--same', t('short'), '--rounds', '2', '--pause-ms', '2500')
    check(r['ok'] == 2 and r['stats']['queries'] == 3,
          'ttl_min = 30 s (default) floors the 2 s TTL: second round from the cache',
          r['stats']['queries'], 3)
    c = env.conf('ttl_max = 1s\nttl_min = 0\nnegative_ttl_max = 1s\n')
    r = env.load(c, '-n', '1', '--same', t('order'), '--rounds', '2', '--pause-ms', '1500')
    check(r['stats']['queries'] == 22, 'ttl_max = 1 s caps the 300 s TTLs: all asked again',
          r['stats']['queries'], 22)
    c = env.conf('')
    r = env.load(c, '-n', '1', '--same', t('nxdomain'), '--rounds', '3')
    check(r['perm'] == 3 and r['stats']['queries'] == 1 and r['stats']['cache_hits'] == 2,
          'NXDOMAIN cached (RFC 2308): one query for three requests',
          (r['stats']['queries'], r['stats']['cache_hits']))
    c = env.conf('ttl_min = 0\nnegative_ttl_max = 1s\n')
    r = env.load(c, '-n', '1', '--same', t('nxdomain'), '--rounds', '2', '--pause-ms', '1500')
    check(r['stats']['queries'] == 2, 'negative_ttl_max = 1 s: NXDOMAIN asked again after 1.5 s',
          r['stats']['queries'], 2)
    # Temporary failures are remembered for tempfail_ttl only.
    c = env.conf('')
    r = env.load(c, '-n', '1', '--same', 'x.broken.test', '--rounds', '2')
    check(r['temp'] == 2 and r['stats']['queries'] == 1,
          'SERVFAIL remembered for tempfail_ttl (5 s): one query', r['stats']['queries'], 1)
    c = env.conf('tempfail_ttl = 0\n')
    r = env.load(c, '-n', '1', '--same', 'x.broken.test', '--rounds', '2')
    check(r['temp'] == 2 and r['stats']['queries'] == 2,
          'tempfail_ttl = 0: SERVFAIL not remembered', r['stats']['queries'], 2)


def faults(env):
    c = env.conf('timeout = 2s\n')
    d, _ = env.one(c, 'x.broken.test')
    check(d['verdict'] == 'temporary' and d['status'] == '4.4.3' and 'SERVFAIL' in d['reason'],
          'SERVFAIL (zone that failed to load): temporary 4.4.3', d)
    d, _ = env.one(c, 'example.invalid')
    check(d['verdict'] == 'temporary' and 'REFUSED' in d['reason'],
          'REFUSED: temporary 4.4.3', d)

    # Failover: a server that SERVFAILs, then a good one.
    d, _ = env.one(env.conf('', servers=BAD), t('order'))
    check(d['verdict'] == 'temporary' and 'SERVFAIL' in d['reason'],
          'a SERVFAILing server alone: temporary, SERVFAIL', d['reason'])
    dests, st, _ = env.route(env.conf('', servers=BAD + ',' + SERVER), *([t('order')] * 3),
                             t('implicit'), stats=True)
    check(all(x['verdict'] == 'ok' for x in dests),
          'SERVFAIL from the first server, the second answers: ok',
          [x['verdict'] for x in dests])
    d, _ = env.one(env.conf('', servers=BAD + ',' + BAD), t('order'))
    check(d['verdict'] == 'temporary' and d['status'] == '4.4.3',
          'every server SERVFAILs: temporary 4.4.3', d['reason'])

    # Malformed replies (answers cut short): rejected and counted.
    dests, st, _ = env.route(env.conf('timeout = 2s\n', servers=CUT), t('order'), stats=True)
    d = dests[0]
    check(d['verdict'] == 'temporary' and d['status'] == '4.4.3' and
          'malformed' in d['reason'] and st['malformed'] >= 1,
          'malformed replies: temporary 4.4.3, counted (the MX reply loses only its'
          ' additional section, which is not read)', (d['reason'], st['malformed']))

    # A slow server: 400 ms each way through the delaying relay.
    cs = env.conf('timeout = 5s\ntries = 1\n', servers=SLOW)
    d, dt = env.one(cs, t('implicit'))
    check(d['verdict'] == 'ok' and dt >= 1.6,
          'slow server (400 ms each way): still ok, after MX then A/AAAA round trips',
          (d['verdict'], round(dt, 2)))
    cs2 = env.conf('timeout = 500ms\ntries = 1\n', servers=SLOW)
    d, dt = env.one(cs2, t('implicit'))
    check(d['verdict'] == 'temporary' and 'timeout' in d['reason'] and dt < 2.5,
          'slow server past the 500 ms budget: temporary (timeout)', (d['reason'], round(dt, 2)))
    r = env.load(cs, '-n', '200', '--prefix', 'd', '--suffix', '.bulk.test')
    # The loop's health by what it did, not by wall-clock gaps (which a
    # loaded machine's scheduler makes): the timer kept firing, and no
    # resolver call took 50 ms of CPU.
    check(r['ok'] == 200 and r['timer_fires'] >= r['elapsed_ms'] / 10 * 0.5 and
          r['loop_max_busy_cpu_ms'] < 50,
          'slow server: 200 domains ok, the 10 ms timer kept firing, no call held the loop',
          (r['ok'], r['timer_fires'], r['elapsed_ms'], r['loop_max_busy_cpu_ms']))

    # Nothing listening: ICMP port unreachable.
    cd = env.conf('timeout = 2s\n', servers=DEAD)
    d, dt = env.one(cd, t('order'))
    check(d['verdict'] == 'temporary' and d['status'] == '4.4.3' and dt < 2.0,
          'no server at the address: temporary 4.4.3 at once', (d['reason'], round(dt, 2)))

    # The server stopped (SIGSTOP): its socket is there, no answer comes.
    ct = env.conf('timeout = 1s\ntries = 2\n')
    env.lab.freeze()
    try:
        d, dt = env.one(ct, t('order'))
    finally:
        env.lab.thaw()
    check(d['verdict'] == 'temporary' and d['status'] == '4.4.3' and 'timeout' in d['reason'],
          'server stopped: temporary 4.4.3 (timeout)', d['reason'])
    check(0.9 <= dt < 2.0, 'server stopped: gave up within the configured 1 s (+ start-up)',
          round(dt, 2))
    d, _ = env.one(ct, t('order'))
    check(d['verdict'] == 'ok', 'server resumed: ok again', d['verdict'])

    env.lab.stop_named()
    d, dt = env.one(ct, t('order'))
    check(d['verdict'] == 'temporary' and d['status'] == '4.4.3' and dt < 2.0,
          'server killed: temporary 4.4.3', (d['reason'], round(dt, 2)))


def load(env):
    c = env.conf('timeout = 5s\nmax_in_flight = 64\n')
    r = env.load(c, '-n', '10000', '--rounds', '2', '--tick-ms', '10')
    print(json.dumps(r))
    check(r['done'] == 20000 and r['ok'] == 20000 and not r['timed_out'],
          '10,000 distinct domains, twice: all ok', (r['done'], r['ok']))
    check(r['stats']['in_flight_max'] <= 64, 'at most max_in_flight=64 queries at once',
          r['stats']['in_flight_max'], '<= 64')
    check(r['stats']['queries'] == 10004,
          'one MX query per domain, the two shared exchangers asked once (A+AAAA)',
          r['stats']['queries'], 10004)
    check(r['timer_fires'] >= r['elapsed_ms'] / 10 * 0.5,
          'the loop never blocked: a 10 ms timer fired throughout (half its ticks at least)',
          (r['timer_fires'], r['elapsed_ms'], r['timer_max_gap_ms']))
    check(r['loop_max_busy_cpu_ms'] < 50,
          'no single resolver call held the loop for 50 ms of CPU (ASan build)',
          r['loop_max_busy_cpu_ms'])
    check(r['stats']['retries'] == 0, 'no query lost on the way (no c-ares retry)',
          r['stats']['retries'], 0)
    print('cache hit rate %.1f%% (%d hits, %d misses of which %d joined a query in flight);'
          ' %.0f first-round lookups/s' % (100 * r['hit_rate'], r['stats']['cache_hits'],
                                           r['stats']['cache_misses'], r['stats']['dedup'],
                                           r['first_round_per_s']))
    check(r['hit_rate'] > 0.5, 'cache hit rate reported and above 50%', r['hit_rate'])
    # A small cache: the size bound holds and evicts.
    c2 = env.conf('max_in_flight = 64\ncache_size = 1000\n')
    r = env.load(c2, '-n', '3000')
    check(r['ok'] == 3000 and r['stats']['cache_entries'] <= 1000 and
          r['stats']['evictions'] >= 2000, 'cache_size=1000 bound holds under 3000 domains',
          (r['stats']['cache_entries'], r['stats']['evictions']))


def main():
    scenario, route, load_bin = sys.argv[1:4]
    with DnsLab() as lab:
        env = Env(lab, route, load_bin)
        {'routing': routing, 'cache': cache, 'faults': faults, 'load': load}[scenario](env)
    if FAILS:
        print('%d check(s) failed' % len(FAILS))
        sys.exit(1)
    print('all checks passed')


if __name__ == '__main__':
    main()
