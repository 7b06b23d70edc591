"""Benchmarks of the Encounter API against DynamoDB Local (``python -m bench``, ``make bench``).

One run starts its own DynamoDB Local, creates the template's tables under a prefix of its own, loads
patients and encounters, measures, prints a table and ends with one JSON line of figures:

- cold starts of the read and write functions against a bare boto3 function, with and without
  bytecode and with X-Ray tracing on (``bench.coldstart``);
- the handler's warm overhead over the DynamoDB calls it makes (``bench.overhead``);
- search latency at 1,000 and 20,000 encounters (``bench.scaling``);
- write units of one create, as DynamoDB Local reports them and by AWS's billing rules (``bench.capacity``);
- the most items one hostile search reads at 20,000 encounters, against the read budget (``bench.hostile``);
- a short load run through the local gateway with real tokens (``bench.load``).
"""
