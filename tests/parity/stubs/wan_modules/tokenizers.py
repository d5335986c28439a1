class HuggingfaceTokenizer:
    pass
