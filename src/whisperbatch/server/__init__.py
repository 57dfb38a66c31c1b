"""`whisperbatch serve`: the job runner behind an HTTP face.

Every request that asks for work becomes a durable job in the same store every other command uses, so
a restart loses nothing and a client that asks again gets the stored result instead of a second bill.
The HTTP job API (`jobs_api`), the drop-in endpoints for OpenAI clients (`openai_api`) and for
whisper-asr-webservice clients such as Bazarr (`asr_api`), the web page (`page`) and webhooks
(`webhooks`) are views over that store; `submit` is the one way a request becomes a job.
"""
