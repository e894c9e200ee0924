{#- Which requests train and which test: train days D-train_days .. D-1, test day D (vars), and an
    optional sample of users by a hash of user_id, the same users in both splits. -#}

with

features as (

    select * from {{ ref('stg_warehouse__features') }}
    where ds between {{ edgerec.ds_minus(var('train_days')) }} and {{ edgerec.ds_var() }}

),

split as (

    select
        *,
        case when ds = {{ edgerec.ds_var() }} then 'test' else 'train' end as split,
        {{ edgerec.hash_bucket('user_id', var('sample_buckets')) }} as user_bucket,
        {{ edgerec.list_length('cand_item_id') }} as n_candidates,
        {{ edgerec.list_sum('mask') }} as n_labelled,
        {{ edgerec.list_sum('label') }} as n_clicks

    from features

),

final as (

    select * from split
    where user_bucket < {{ var('sample_rate') }} * {{ var('sample_buckets') }}

)

select * from final
