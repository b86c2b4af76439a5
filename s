
1 thread1: images/s by CPU time (by wall time); ratio of CPU-time throughputs

2 thread2: images/s by CPU time (by wall time); ratio of CPU-time throughputs
