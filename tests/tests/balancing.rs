//! Load-balancing policies through a real weft: endpoint weights, consistent hashing on a
//! header. (Least request is covered by the unit tests of `cluster::lb`.)

use std::collections::HashMap;

use weft_e2e::*;

fn config(cluster: &str) -> String {
    format!(
        "admin: {{ address: 127.0.0.1:0 }}\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    routes:\n      - cluster: pool\nclusters:\n{cluster}"
    )
}

async fn spread(
    weft: &Weft,
    n: usize,
    headers: impl Fn(usize) -> Vec<(String, String)>,
) -> HashMap<String, usize> {
    let client = http1_client();
    let mut seen = HashMap::new();
    for i in 0..n {
        let h = headers(i);
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let reply = get(&client, weft.addr("main"), "/", &h).await;
        assert_eq!(reply.status, 200);
        *seen
            .entry(reply.header("x-upstream").unwrap().to_string())
            .or_default() += 1;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_round_robin_follows_endpoint_weights() {
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let cluster = format!(
        "  - name: pool\n    endpoints: [ {{ address: \"{}\", weight: 1 }}, {{ address: \"{}\", weight: 3 }} ]\n",
        a.addr, b.addr
    );
    let weft = Weft::start(&config(&cluster), 1);
    let seen = spread(&weft, 400, |_| Vec::new()).await;
    // One worker walks the schedule a b b b: exactly 1:3.
    assert_eq!((seen["a"], seen["b"]), (100, 300), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_hash_on_a_header_keeps_each_client_on_one_endpoint() {
    let ups = [
        Upstream::start("u0").await,
        Upstream::start("u1").await,
        Upstream::start("u2").await,
    ];
    for policy in ["ring_hash", "maglev"] {
        let cluster = format!(
            "  - name: pool\n    lb_policy: {policy}\n    hash_key: {{ header: x-user }}\n    endpoints: [\"{}\", \"{}\", \"{}\"]\n",
            ups[0].addr, ups[1].addr, ups[2].addr
        );
        let weft = Weft::start(&config(&cluster), 2);
        let client = http1_client();
        let mut home: HashMap<String, String> = HashMap::new();
        for round in 0..3 {
            for user in 0..30 {
                let user = format!("user-{user}");
                let reply = get(&client, weft.addr("main"), "/", &[("x-user", &user)]).await;
                let upstream = reply.header("x-upstream").unwrap().to_string();
                if round == 0 {
                    home.insert(user, upstream);
                } else {
                    assert_eq!(home[&user], upstream, "{policy}: {user} moved");
                }
            }
        }
        // 30 users over 3 endpoints: every endpoint gets some.
        let used: std::collections::HashSet<_> = home.values().collect();
        assert_eq!(used.len(), 3, "{policy}: {home:?}");
    }
}
