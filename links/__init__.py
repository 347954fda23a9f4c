"""Links between exchanges: a buyer at exchange B computes on the holders of exchange A.

A link is a process (``wharf link serve --config link.toml``) holding two
certificates: a *party* certificate of B's CA and a *buyer* certificate of
A's CA. At B it is one party, listing A's datasets (schema, column roles,
privacy terms as A's holders state them, and how many holders its answers
sum); at A it is one buyer. For each aggregate task from B it checks the B
buyer's signed job exactly as a holder would (B's CA, this link named,
freshness, replay, the Paillier key and its modulus proof), submits the same
AggregateSpec to A signed by itself, checks A's holders' receipts against
A's CA, and sends A's combined ciphertexts to B as its contribution, with a
receipt signed by its B key declaring the combined noise. A's gateway and
holders meter, record and limit the job as any of A's; B's gateway records
the link's contribution as any holder's.

What each party learns:

- **B's buyer** learns the aggregate over A's holders (and B's own, if it
  asked them too), as if the link were one holder; its keys never leave it.
- **B's gateway** sees the link as one party: its listings, tasks and one
  ciphertext contribution per job, never A's holders' names or shares.
- **The link** sees the B buyer's public parameters and ciphertexts only:
  A's re-randomised totals under the B buyer's key. It holds no secret key
  and never sees a plaintext (packed Paillier offsets are corrected under
  encryption with ``protocols.schemes.paillier.offset_correction``).
- **A's gateway and holders** see the link as the buyer: its name (not the
  B buyer's), the B buyer's public key and spec. A's holders apply their
  own policy, grants and differential privacy to the link's identity, so
  **every buyer at B shares the link's one privacy budget (and quotas) at
  A**: A's operator grants the link what all of B's buyers together may use.

At B the link is a holder with a policy of its own (``allowed_buyers``,
``grants = "required"`` with grants it signs, ``links.grants``) and a
listing B's operator reviews and prices (``links.market``); B meters the
link's contributions at that price, A meters the link's jobs at its
holders' prices.

Who must trust whom: B's buyer trusts the link (B's CA certified it) as it
trusts any holder, for correctness only: a link could relay a wrong total
as a holder could send a wrong figure, and it could not read one. A's
holders trust nothing of B: they answer A's buyer, the link, under their
own terms. The link trusts both CAs, each for its side only. Privacy rests
on the B buyer's key: the link, both gateways and A's holders together
still see only ciphertexts under it and the released total.

Limits: aggregate jobs only (a PSI runs against a holder directly); CKKS is
refused when A has several holders (B's buyer would understate the error);
packed-Paillier sums of A's holders must fit one holder's slot range, or
B's buyer refuses the total rather than misread it.
"""
