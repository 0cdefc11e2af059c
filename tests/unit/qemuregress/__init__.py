"""The QEMU regression net (tests/unit/qemu-regress.py), by job:

  common    the paths (the source tree, DIH_WORK, tools/pq), the tests'
            PATH, log() and die()
  testset   what runs: the test set, its timeouts and chunking, and
            definition(), the key of the base's cached results
  results   a test's Result, the results files, counts and their wording
  proc      the tests' processes, each in a session of its own, and
            stop_all() on a signal
  side      one side (base or patched): its build, its run directory,
            building, listing and running its qtests and iotests
  base      the base's results: cached, or the base built and run
  compare   the patched side against the base: reruns, rechecks on both
            sides in turn, the verdict and the report
"""
